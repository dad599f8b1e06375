-- A job that ended without a clip must still tell its member why, even when Discord is down
-- at that moment or the bot is killed before the message goes out.
-- failure_notice_due: set in the same write that ends the job (when the member is owed a
--   message), cleared once the message is shown or can never be; a restart tells the rest.
ALTER TABLE jobs ADD COLUMN failure_notice_due REAL;
CREATE INDEX jobs_failure_notice_due ON jobs (failure_notice_due)
    WHERE failure_notice_due IS NOT NULL;
