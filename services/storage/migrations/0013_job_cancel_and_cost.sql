-- Who cancelled a job (a moderator's cancel does not count against the member), and
-- whether its cost is Segmind's own figure rather than the estimate made at admission.
ALTER TABLE jobs ADD COLUMN cancelled_by INTEGER;
ALTER TABLE jobs ADD COLUMN cost_reported INTEGER NOT NULL DEFAULT 0;
