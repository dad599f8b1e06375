-- Marks that make a paid clip's delivery and a member's repeated click safe across restarts.
-- fingerprint: what makes two requests "the same" (a double click, a repeated command), so
--   the second within a few seconds is answered with the first instead of billed again.
-- posting_started_at: set, durably, right before the clip is posted; after a crash the bot
--   looks for its own message before posting again.
-- shared_at, shared_message_id: when and where a private clip was shared, so Share holds
--   after a restart and the shared post's buttons are known to belong to the job.
ALTER TABLE jobs ADD COLUMN fingerprint TEXT;
ALTER TABLE jobs ADD COLUMN posting_started_at REAL;
ALTER TABLE jobs ADD COLUMN shared_at REAL;
ALTER TABLE jobs ADD COLUMN shared_message_id INTEGER;
CREATE INDEX jobs_member_fingerprint ON jobs (guild_id, user_id, fingerprint, created_at);
-- The operator's daily ceiling sums today's jobs across every server inside admission's
-- lock: without this index that is a scan of the whole table per request.
CREATE INDEX jobs_created ON jobs (created_at);
