-- Several processes on one database: telling a member of an ending is claimed first, so two
-- processes never tell the same one twice, and a dead process's claim runs out for another.
-- failure_notice_claimed_by/_until: the process trying to tell a job's failure, until when.
-- notice_claimed_by/_until: the process whose sweep is telling an approval request's end.
ALTER TABLE jobs ADD COLUMN failure_notice_claimed_by TEXT;
ALTER TABLE jobs ADD COLUMN failure_notice_claimed_until REAL;
ALTER TABLE approval_requests ADD COLUMN notice_claimed_by TEXT;
ALTER TABLE approval_requests ADD COLUMN notice_claimed_until REAL;
