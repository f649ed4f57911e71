-- Unique jobs (_unique): the key a job holds and the statuses it holds it in. Only
-- unique jobs fill these columns; the partial index holds nothing for the others, and a
-- row leaves it when its status leaves its key's statuses (so a new job may take the key).
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS unique_key text;
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS unique_states text[];
CREATE UNIQUE INDEX IF NOT EXISTS {jobs_unique_idx_name}
    ON {jobs} (unique_key) WHERE unique_key IS NOT NULL AND status = ANY(unique_states);
