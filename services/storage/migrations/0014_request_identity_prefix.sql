-- The delivered-request index held the whole request text, and PostgreSQL refuses an index
-- entry past about 2.7 kB: there, a clip with long prompts could not be marked delivered.
-- The text's first 200 characters (it starts with the prompt, where requests differ most)
-- find the few candidates; the lookup then compares the whole text.
DROP INDEX jobs_delivered_request;
CREATE INDEX jobs_delivered_request ON jobs (guild_id, substr(request_json, 1, 200))
    WHERE state = 'delivered';
