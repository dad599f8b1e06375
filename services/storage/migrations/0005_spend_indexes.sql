-- /metrics sums every server's spend at each scrape while holding the database's one lock
-- (/healthz and every job wait behind it). These covering indexes hold just what those sums
-- read, so a scrape reads an index instead of every job row with its prompt.
-- Billed: Segmind accepted the clip (a request id, never cleared). request_id is a column
-- only so SQLite can answer from the index alone.
CREATE INDEX jobs_billed_spend ON jobs (guild_id, cost_usd, request_id)
    WHERE request_id IS NOT NULL;
-- Reserved: counted against the budget, not (yet) accepted: a handful of rows at a time.
CREATE INDEX jobs_reserved_spend ON jobs (guild_id, cost_usd, state, request_id)
    WHERE request_id IS NULL AND state IN ('queued', 'submitting', 'unknown');
