-- Progress a running job reports (ctx.progress): the fraction done, from 0 to 1, and what
-- it is doing. Written by its worker at most once a second, cleared when an attempt starts.
-- No CHECK constraint: adding one would scan the whole table; the worker checks the values.
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS progress double precision;
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS progress_message text;
-- Attempts that ended with Snooze: the job was put back to run later. Like `lost` and
-- `released`, they do not spend a retry.
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS snoozed integer NOT NULL DEFAULT 0;
