-- Dataset modes: how a new object changes its dataset. Datasets created before modes keep
-- what they did (append).
ALTER TABLE geoflow_datasets ADD COLUMN mode TEXT NOT NULL DEFAULT 'append' CHECK (mode IN ('replace', 'append'));

-- What decided a source's rows besides its content (policy, mode): the same content loaded
-- under other settings is loaded again. Sources loaded before get the policy of their load
-- (the default, skip, if its record is gone).
ALTER TABLE geoflow_sources ADD COLUMN settings TEXT;
UPDATE geoflow_sources
SET settings = 'policy=' || coalesce((SELECT l.policy FROM geoflow_loads l WHERE l.id = geoflow_sources.load_id), 'skip')
  || ';mode=append'
WHERE settings IS NULL;

-- When storage last modified the object a source was loaded from (RFC 3339 UTC, as every
-- catalog time): in replace mode the newest object wins, whatever order the events arrive in.
ALTER TABLE geoflow_sources ADD COLUMN modified TEXT;
