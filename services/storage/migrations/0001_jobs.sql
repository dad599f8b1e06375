-- Jobs: every request is stored before it is submitted, and updated at each step,
-- so a restart can resume it and nothing is submitted twice.
CREATE TABLE jobs (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id               INTEGER NOT NULL,
    channel_id             INTEGER NOT NULL,
    user_id                INTEGER NOT NULL,
    request_json           TEXT    NOT NULL,
    state                  TEXT    NOT NULL,
    private                INTEGER NOT NULL DEFAULT 0,
    parent_job_id          INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    request_id             TEXT,
    status_url             TEXT,
    response_url           TEXT,
    segmind_state          TEXT,
    message_id             INTEGER,
    interaction_token      TEXT,
    interaction_created_at REAL,
    application_id         INTEGER,
    upload_limit           INTEGER,
    created_at             REAL    NOT NULL,
    submitted_at           REAL,
    finished_at            REAL,
    video_url              TEXT,
    clip_path              TEXT,
    result_message_id      INTEGER,
    error                  TEXT,
    cost_usd               REAL    NOT NULL DEFAULT 0,
    updated_at             REAL    NOT NULL
);
CREATE INDEX jobs_member_window ON jobs (guild_id, user_id, created_at);
CREATE INDEX jobs_guild_window ON jobs (guild_id, created_at);
CREATE INDEX jobs_state ON jobs (state);
CREATE UNIQUE INDEX jobs_request_id ON jobs (request_id) WHERE request_id IS NOT NULL;

-- Small facts the bot keeps between runs (the synced command schema's hash, ...).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
