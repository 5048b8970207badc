-- Loads and jobs that end superseded: storage held a newer state of the object by the time
-- they would have committed, so they changed nothing.
ALTER TABLE geoflow.loads DROP CONSTRAINT IF EXISTS loads_status_check;
ALTER TABLE geoflow.loads
  ADD CONSTRAINT loads_status_check CHECK (status IN ('loaded', 'unchanged', 'failed', 'superseded'));
ALTER TABLE geoflow.jobs DROP CONSTRAINT IF EXISTS jobs_status_check;
ALTER TABLE geoflow.jobs
  ADD CONSTRAINT jobs_status_check
  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped-duplicate', 'superseded'));
