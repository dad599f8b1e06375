-- How long recent jobs took at Segmind, so the poll schedule and the progress bar follow
-- what Segmind does now and survive a restart (services.finish_estimate).
-- queue_seconds: from the submit to leaving Segmind's queue; processing_seconds: from
--   then to the end. Each is known to within a poll, so the midpoints are stored.
-- Only the newest rows of each kind (input_frames x steps) are kept; older ones are pruned.
-- recorded_at: when, for an operator reading the table (the bot reads only the newest).
CREATE TABLE job_timings (
    id INTEGER PRIMARY KEY,
    input_frames INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    queue_seconds REAL NOT NULL,
    processing_seconds REAL NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE INDEX job_timings_kind ON job_timings (input_frames, steps, id);
