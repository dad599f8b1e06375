-- "Already made": a member asking for exactly the request (every parameter and the seed) of a
-- clip delivered on the server gets that clip instead of paying again. Without this index
-- the lookup reads every job row, prompts included, while holding the database's one lock.
-- Only delivered jobs, the only ones offered, are indexed.
CREATE INDEX jobs_delivered_request ON jobs (guild_id, request_json)
    WHERE state = 'delivered';
