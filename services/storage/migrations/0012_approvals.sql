-- Approval before spending: a server's rule, and the requests waiting for a moderator.

-- A row means approval is required for members without role_id (NULL: for everyone);
-- no row means approval is off. expiry_seconds: how long a request waits for an answer.
CREATE TABLE approval_settings (
    guild_id       INTEGER PRIMARY KEY,
    role_id        INTEGER,
    expiry_seconds INTEGER NOT NULL CHECK (expiry_seconds > 0),
    set_by         INTEGER NOT NULL,
    set_at         REAL    NOT NULL
);

-- A request held for approval: no job exists for it (nothing counted or billed) until a
-- moderator approves it; then job_id names the job admission made from it. 'refused':
-- approved, but admission refused it then (the member's limit, a budget); 'cancelled':
-- withdrawn by the member (or a moderator) while it waited; 'failed': approved, but the bot
-- could not start it (an error on its side, not the limits). decided_by/decided_at say who
-- ended its wait, and when; reason is a denial's or a refusal's words. The job admission
-- makes for request N carries the fingerprint 'approval:N', so a restart finds it.
CREATE TABLE approval_requests (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id               INTEGER NOT NULL,
    channel_id             INTEGER NOT NULL,
    user_id                INTEGER NOT NULL,
    role_ids_json          TEXT    NOT NULL,
    request_json           TEXT    NOT NULL,
    private                INTEGER NOT NULL DEFAULT 0,
    parent_job_id          INTEGER,
    fingerprint            TEXT,
    interaction_token      TEXT,
    interaction_created_at REAL,
    application_id         INTEGER,
    upload_limit           INTEGER,
    message_id             INTEGER,
    alert_channel_id       INTEGER,
    alert_message_id       INTEGER,
    state                  TEXT    NOT NULL DEFAULT 'pending'
                           CHECK (state IN ('pending', 'approved', 'refused', 'denied',
                                            'expired', 'cancelled', 'failed')),
    created_at             REAL    NOT NULL,
    expires_at             REAL    NOT NULL,
    decided_by             INTEGER,
    decided_at             REAL,
    reason                 TEXT,
    job_id                 INTEGER REFERENCES jobs (id),
    -- Once its wait ended: whether the member has been told how (or there was nothing to
    -- tell, or Discord refused for good), and whether the moderators' card says it. A
    -- Discord blip leaves them 0, and the sweep tries again for up to a day.
    member_told            INTEGER NOT NULL DEFAULT 0,
    card_updated           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX approval_requests_pending ON approval_requests (state, expires_at);
-- One pending request per member and fingerprint: two interactions of the same request at
-- once (a double click, /video delivered twice) cannot both wait, and be approved twice.
-- NULL fingerprints are distinct in SQLite: a request without one is never de-duplicated.
CREATE UNIQUE INDEX approval_requests_one_pending
    ON approval_requests (guild_id, user_id, fingerprint) WHERE state = 'pending';
-- The sweep's retries of notices Discord did not take: few rows, ended ones only.
CREATE INDEX approval_requests_unsettled ON approval_requests (decided_at)
    WHERE member_told = 0 OR card_updated = 0;
