-- Attempts put back by a worker that shut down gracefully. Like `lost`, they do not
-- spend a retry; unlike `lost`, they never fail a job: a drain is not a crash.
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS released integer NOT NULL DEFAULT 0;
