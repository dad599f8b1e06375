-- A clip's post deleted with its Delete button: "already made" must not point a member at
-- a message that is gone. Public and shared posts are tracked apart, since a private clip's
-- requester can still be shown the stored file after its shared post is deleted.
ALTER TABLE jobs ADD COLUMN result_deleted_at REAL;
ALTER TABLE jobs ADD COLUMN shared_deleted_at REAL;
