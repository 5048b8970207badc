-- Upsert mode: features keyed by their Feature id or by a named property (key_property; NULL
-- for the Feature id), the newest object winning each key.
ALTER TABLE geoflow.datasets DROP CONSTRAINT IF EXISTS datasets_mode_check;
ALTER TABLE geoflow.datasets ADD CONSTRAINT datasets_mode_check CHECK (mode IN ('replace', 'append', 'upsert'));
ALTER TABLE geoflow.datasets ADD COLUMN IF NOT EXISTS key_property text;

-- Dropping a dataset is a job too.
ALTER TABLE geoflow.jobs DROP CONSTRAINT IF EXISTS jobs_action_check;
ALTER TABLE geoflow.jobs ADD CONSTRAINT jobs_action_check CHECK (action IN ('load', 'remove', 'drop'));
