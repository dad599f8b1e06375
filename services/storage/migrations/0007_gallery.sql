-- The gallery: a channel where a server shows off its clips, and the clips posted there.

-- One row per server with a gallery; no row means no gallery. mode: 'manual' (a Publish
-- button on public result cards) or 'auto' (every delivered public clip).
CREATE TABLE gallery_settings (
    guild_id   INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL,
    mode       TEXT    NOT NULL CHECK (mode IN ('manual', 'auto')),
    set_by     INTEGER NOT NULL,
    set_at     REAL    NOT NULL
);

-- A clip is published at most once, ever: the row is claimed before the post goes out
-- (message_id NULL until it is posted) and removed only when the post surely failed.
-- A claim left without a message id by a crash mid-post stays: posting again could
-- show the clip twice.
CREATE TABLE gallery_posts (
    job_id     INTEGER PRIMARY KEY REFERENCES jobs (id),
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    message_id INTEGER,
    claimed_by INTEGER NOT NULL,
    claimed_at REAL    NOT NULL
);
