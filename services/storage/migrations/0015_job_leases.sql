-- Several bot processes on one database: each unfinished job is leased to the process
-- running it (lease_owner, renewed before lease_until), so the jobs of a process that dies
-- are taken over by another once its lease runs out, and never run by two at once.
-- slot_held: the job was started, so it holds one of MAX_CONCURRENT_JOBS (and one of its
-- member's) from then until its clip is on disk; counted in the database, across processes.
-- cancel_requested_by: a Cancel pressed in another process than the one running the job,
-- for the runner to carry out (0: the member themself, as cancelled_by would say).
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until REAL;
ALTER TABLE jobs ADD COLUMN slot_held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancel_requested_by INTEGER;
CREATE INDEX jobs_unfinished_leases ON jobs (lease_until)
    WHERE state IN ('queued', 'submitting', 'submitted', 'processing', 'downloaded');
