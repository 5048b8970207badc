/* Conditions: Row deleted
   Actions   : Remove record from rtree for old fid */
CREATE TRIGGER {trigger_delete} AFTER DELETE ON {table}
  WHEN old.geom NOT NULL
BEGIN
  DELETE FROM {rtree} WHERE id = OLD.fid;
END;
