-- Words and patterns a server keeps out of prompts, and the prompts they refused.

-- term: as the moderator typed it, a word or phrase, or /regex/ (validated when added).
CREATE TABLE blocklist_terms (
    guild_id INTEGER NOT NULL,
    term     TEXT    NOT NULL,
    added_by INTEGER NOT NULL,
    added_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, term)
);

-- A refused request, for moderators: who, where, when and which term. The member is never
-- shown the term; moderators are.
CREATE TABLE blocked_prompts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    term       TEXT    NOT NULL,
    at         REAL    NOT NULL,
    -- 1: the term is a pattern that ran out of time on this prompt (counted as a match).
    timed_out  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blocked_prompts_guild ON blocked_prompts (guild_id, id);
