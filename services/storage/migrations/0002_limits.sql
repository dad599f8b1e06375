-- Fair use that moderators control, per server: the server's own settings, limits
-- for single members and for roles, an audit log of every change, and the alerts
-- already sent so moderators hear about a reached budget once per period.

-- One row per server that changed anything; a missing row or a NULL column means
-- "not set": the operator's DEFAULT_LIMIT applies and there is no cap.
CREATE TABLE guild_settings (
    guild_id               INTEGER PRIMARY KEY,
    default_count          INTEGER CHECK (default_count IS NULL OR default_count >= 0),
    default_period_seconds INTEGER CHECK (default_period_seconds IS NULL OR default_period_seconds > 0),
    daily_clip_cap         INTEGER CHECK (daily_clip_cap IS NULL OR daily_clip_cap > 0),
    monthly_budget_usd     REAL    CHECK (monthly_budget_usd IS NULL OR monthly_budget_usd > 0),
    moderator_role_id      INTEGER,
    alert_channel_id       INTEGER,
    updated_at             REAL    NOT NULL,
    CHECK ((default_count IS NULL) = (default_period_seconds IS NULL))
);

-- A member's own limit overrides their roles and the server default; count 0 blocks.
CREATE TABLE user_limits (
    guild_id       INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    count          INTEGER NOT NULL CHECK (count >= 0),
    period_seconds INTEGER NOT NULL CHECK (period_seconds > 0),
    set_by         INTEGER NOT NULL,
    set_at         REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- A limit for everyone with a role; a member with several gets the most generous.
CREATE TABLE role_limits (
    guild_id       INTEGER NOT NULL,
    role_id        INTEGER NOT NULL,
    count          INTEGER NOT NULL CHECK (count >= 0),
    period_seconds INTEGER NOT NULL CHECK (period_seconds > 0),
    set_by         INTEGER NOT NULL,
    set_at         REAL    NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

-- Who changed what, and when. Written in the same transaction as the change itself.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id INTEGER NOT NULL,
    actor_id INTEGER NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT '',
    at       REAL    NOT NULL
);
CREATE INDEX audit_log_guild ON audit_log (guild_id, id);

-- An alert (like "daily cap reached on 2024-05-01") is sent once per server and key.
CREATE TABLE alerts_sent (
    guild_id INTEGER NOT NULL,
    key      TEXT    NOT NULL,
    sent_at  REAL    NOT NULL,
    PRIMARY KEY (guild_id, key)
);
