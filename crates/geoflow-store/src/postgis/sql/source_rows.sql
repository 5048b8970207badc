-- Where a source's rows are: the range of `fid` its latest load wrote them in (fids come from
-- the table's identity sequence, and loads into a dataset take turns). Replacing or removing
-- a source deletes by that range through the primary key, so dataset tables need no index on
-- gf_source. NULL for sources loaded before this step: those are found by gf_source, which
-- tables created before it are indexed on.
ALTER TABLE geoflow.sources
  ADD COLUMN min_fid bigint,
  ADD COLUMN max_fid bigint;
