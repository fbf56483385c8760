-- At most one running session per user, enforced by the database: two concurrent
-- `POST /sessions` (or two daemons sharing one PostgreSQL) could otherwise both pass the API's
-- check and start two. Older duplicates (only possible before this index) become interrupted.
UPDATE sessions SET status = 'interrupted'
WHERE status = 'running'
  AND id NOT IN (SELECT MAX(id) FROM sessions WHERE status = 'running' GROUP BY user_id);
CREATE UNIQUE INDEX sessions_one_running_per_user ON sessions (user_id) WHERE status = 'running';
