-- Dataset modes: how a new object changes its dataset. Datasets created before modes keep
-- what they did (append); a constant default rewrites nothing.
ALTER TABLE geoflow.datasets
  ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'append' CHECK (mode IN ('replace', 'append'));

-- What decided a source's rows besides its content (policy, mode): the same content loaded
-- under other settings is loaded again. Sources loaded before get the policy of their load
-- (the default, skip, if its record is gone).
ALTER TABLE geoflow.sources ADD COLUMN IF NOT EXISTS settings text;
UPDATE geoflow.sources s
SET settings = 'policy=' || coalesce((SELECT l.policy FROM geoflow.loads l WHERE l.id = s.load_id), 'skip') || ';mode=append'
WHERE s.settings IS NULL;

-- When storage last modified the object a source was loaded from: in replace mode the newest
-- object wins, whatever order the events arrive in.
ALTER TABLE geoflow.sources ADD COLUMN IF NOT EXISTS modified timestamptz;
