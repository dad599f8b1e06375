-- Where /video works: when a server lists any channel here, only there (and in their threads).
CREATE TABLE allowed_channels (
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    added_by   INTEGER NOT NULL,
    added_at   REAL    NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);
