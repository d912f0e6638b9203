-- Free requests, idempotent on their ids (which share the charges' ids).
\set u random(1, 10000)
\set r random(1, 8)
SELECT dd_log_usage('u' || :u, '/free', 'm' || :r);
