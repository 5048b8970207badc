//! Filling the `gpkg_rtree_index` R-tree of a load in one step at the end of the load.
//!
//! During a load the insert and delete triggers are suspended; the store collects the
//! entries of the rows it inserts and the fids it deletes. Before commit it either applies
//! them through the virtual table (small loads into big tables), or rebuilds the whole index:
//! it reads the entries that stay, adds the new ones, packs them into full nodes along a
//! Hilbert curve and writes SQLite's R-tree shadow tables directly (`_node`, `_parent`,
//! `_rowid`), in the format SQLite's rtree module reads. Either way the index holds exactly
//! the entries the spec's triggers would have written: one per non-empty geometry, its
//! envelope rounded outwards to 32-bit floats as the rtree module rounds it.

use std::collections::HashSet;

use rusqlite::{params, Connection};

use geoflow_core::row::Bbox;

use super::table::quote;
use super::Ctx;
use crate::StoreError;

/// Bytes of one 2-D cell: a 64-bit id and four 32-bit floats.
const CELL_LEN: usize = 8 + 4 * 4;
/// SQLite's upper bound on the cells of a node.
const MAX_CELLS: usize = 51;

/// One R-tree cell: the id (fid or child node) and the box, as the rtree module stores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub min_x: f32,
    pub max_x: f32,
    pub min_y: f32,
    pub max_y: f32,
}

const ROUND_TOWARDS_ZERO: f64 = 1.0 - 1.0 / 8_388_608.0;
const ROUND_AWAY_FROM_ZERO: f64 = 1.0 + 1.0 / 8_388_608.0;

/// The largest float not above `d`, the way the rtree module rounds a lower bound.
pub fn round_down(d: f64) -> f32 {
    let f = d as f32;
    if f64::from(f) > d {
        (d * if d < 0.0 { ROUND_AWAY_FROM_ZERO } else { ROUND_TOWARDS_ZERO }) as f32
    } else {
        f
    }
}

/// The smallest float not below `d`, the way the rtree module rounds an upper bound.
pub fn round_up(d: f64) -> f32 {
    let f = d as f32;
    if f64::from(f) < d {
        (d * if d < 0.0 { ROUND_TOWARDS_ZERO } else { ROUND_AWAY_FROM_ZERO }) as f32
    } else {
        f
    }
}

impl Entry {
    pub fn new(id: i64, b: &Bbox) -> Entry {
        Entry {
            id,
            min_x: round_down(b.min_x),
            max_x: round_up(b.max_x),
            min_y: round_down(b.min_y),
            max_y: round_up(b.max_y),
        }
    }

    fn union(&mut self, o: &Entry) {
        self.min_x = self.min_x.min(o.min_x);
        self.max_x = self.max_x.max(o.max_x);
        self.min_y = self.min_y.min(o.min_y);
        self.max_y = self.max_y.max(o.max_y);
    }

    fn center(&self) -> (f64, f64) {
        ((f64::from(self.min_x) + f64::from(self.max_x)) / 2.0, (f64::from(self.min_y) + f64::from(self.max_y)) / 2.0)
    }
}

pub fn rtree_name(table: &str) -> String {
    format!("rtree_{table}_geom")
}

/// The entries that change in one load.
#[derive(Debug, Default)]
pub struct Changes {
    /// Every row of the table was deleted: no entry stays.
    pub cleared: bool,
    pub deleted: Vec<i64>,
    pub inserted: Vec<Entry>,
}

/// Default for the most entries a load holds in memory (24 bytes each) before applying them,
/// and the most a rebuild packs; beyond that the index is updated entry by entry.
pub const MAX_ENTRIES_IN_MEMORY: usize = 1 << 21;

/// Applies `changes` to the R-tree of `table`, choosing between per-entry updates and a
/// full rebuild by their expected cost.
pub fn apply(conn: &Connection, table: &str, changes: Changes, max_entries: usize) -> Result<(), StoreError> {
    let rtree = rtree_name(table);
    if changes.cleared {
        return rebuild(conn, &rtree, changes);
    }
    let existing: i64 = conn
        .query_row(&format!("SELECT count(*) FROM {}", quote(&format!("{rtree}_rowid"))), [], |r| r.get(0))
        .ctx("counting R-tree entries")?;
    let existing = existing.max(0) as usize;
    let kept = existing.saturating_sub(changes.deleted.len());
    // Through the virtual table an insert or a delete costs about eight times what a
    // rebuild spends on an entry (measured on 200k-entry indexes).
    let incremental_cost = 8 * (changes.inserted.len() + changes.deleted.len());
    let rebuild_cost = kept + changes.inserted.len();
    if incremental_cost <= rebuild_cost || rebuild_cost > max_entries {
        apply_incrementally(conn, &rtree, changes)
    } else {
        rebuild(conn, &rtree, changes)
    }
}

fn apply_incrementally(conn: &Connection, rtree: &str, changes: Changes) -> Result<(), StoreError> {
    let mut delete = conn.prepare(&format!("DELETE FROM {} WHERE id = ?1", quote(rtree))).ctx("updating the R-tree")?;
    for id in changes.deleted {
        delete.execute([id]).ctx("updating the R-tree")?;
    }
    let mut insert = conn
        .prepare(&format!("INSERT INTO {} VALUES (?1, ?2, ?3, ?4, ?5)", quote(rtree)))
        .ctx("updating the R-tree")?;
    for e in changes.inserted {
        insert
            .execute(params![e.id, f64::from(e.min_x), f64::from(e.max_x), f64::from(e.min_y), f64::from(e.max_y)])
            .ctx("updating the R-tree")?;
    }
    Ok(())
}

/// Rebuilds the R-tree from the entries that stay plus the new ones.
fn rebuild(conn: &Connection, rtree: &str, changes: Changes) -> Result<(), StoreError> {
    let node_len: i64 = conn
        .query_row(&format!("SELECT length(data) FROM {} WHERE nodeno = 1", quote(&format!("{rtree}_node"))), [], |r| {
            r.get(0)
        })
        .ctx("reading the R-tree node size")?;
    let node_len = usize::try_from(node_len).unwrap_or(0);
    if node_len < 4 + 2 * CELL_LEN {
        return Err(StoreError::Internal(format!("the R-tree {rtree} has an unexpected node size {node_len}")));
    }
    let capacity = ((node_len - 4) / CELL_LEN).min(MAX_CELLS);

    let deleted: HashSet<i64> = changes.deleted.into_iter().collect();
    let mut entries = changes.inserted;
    if !changes.cleared {
        let mut stmt = conn
            .prepare(&format!("SELECT id, minx, maxx, miny, maxy FROM {}", quote(rtree)))
            .ctx("reading the R-tree")?;
        let mut rows = stmt.query([]).ctx("reading the R-tree")?;
        while let Some(r) = rows.next().ctx("reading the R-tree")? {
            let id: i64 = r.get(0).ctx("reading the R-tree")?;
            if deleted.contains(&id) {
                continue;
            }
            // Stored values are floats; converting them back is exact.
            let f = |i: usize| r.get::<_, f64>(i).map(|v| v as f32).ctx("reading the R-tree");
            entries.push(Entry { id, min_x: f(1)?, max_x: f(2)?, min_y: f(3)?, max_y: f(4)? });
        }
    }

    let tree = pack(entries, capacity);
    for suffix in ["node", "parent", "rowid"] {
        conn.execute_batch(&format!("DELETE FROM {}", quote(&format!("{rtree}_{suffix}"))))
            .ctx("clearing the R-tree")?;
    }
    write(conn, rtree, &tree, node_len)
}

/// A packed tree: `levels[0]` is the root level (one node), the last level the leaves.
/// Each node is a range of cells of the level below (of `entries` for leaves).
struct Packed {
    entries: Vec<Entry>,
    /// Per level, top first: the nodes, each its bounding box (as a cell whose id is unset)
    /// and the range of its children.
    levels: Vec<Vec<(Entry, std::ops::Range<usize>)>>,
}

fn pack(mut entries: Vec<Entry>, capacity: usize) -> Packed {
    sort_by_hilbert(&mut entries);
    let mut levels: Vec<Vec<(Entry, std::ops::Range<usize>)>> = Vec::new();
    let mut level = chunk(&entries, capacity);
    while level.len() > 1 {
        let boxes: Vec<Entry> = level.iter().map(|(b, _)| *b).collect();
        levels.push(level);
        level = chunk(&boxes, capacity);
    }
    levels.push(level);
    levels.reverse();
    Packed { entries, levels }
}

/// Splits `cells` into `ceil(n / capacity)` consecutive nodes of near-equal size (at least
/// one node, possibly empty, so that an empty tree still has its root).
fn chunk(cells: &[Entry], capacity: usize) -> Vec<(Entry, std::ops::Range<usize>)> {
    let n = cells.len();
    let k = n.div_ceil(capacity).max(1);
    (0..k)
        .map(|i| {
            let range = i * n / k..(i + 1) * n / k;
            let mut bbox = Entry { id: 0, min_x: 0.0, max_x: 0.0, min_y: 0.0, max_y: 0.0 };
            if let Some(first) = cells.get(range.start).filter(|_| !range.is_empty()) {
                bbox = *first;
                for c in &cells[range.clone()] {
                    bbox.union(c);
                }
            }
            (bbox, range)
        })
        .collect()
}

fn write(conn: &Connection, rtree: &str, tree: &Packed, node_len: usize) -> Result<(), StoreError> {
    // Node numbers: the root is 1, then each level in order, top to bottom.
    let mut first_nodeno = Vec::with_capacity(tree.levels.len());
    let mut next = 1i64;
    for level in &tree.levels {
        first_nodeno.push(next);
        next += level.len() as i64;
    }
    let depth = (tree.levels.len() - 1) as u16;

    let mut insert_node = conn
        .prepare(&format!("INSERT INTO {} (nodeno, data) VALUES (?1, ?2)", quote(&format!("{rtree}_node"))))
        .ctx("writing the R-tree")?;
    let mut insert_parent = conn
        .prepare(&format!("INSERT INTO {} (nodeno, parentnode) VALUES (?1, ?2)", quote(&format!("{rtree}_parent"))))
        .ctx("writing the R-tree")?;
    let mut blob = vec![0u8; node_len];
    let leaf_level = tree.levels.len() - 1;
    let mut leaf_of: Vec<(i64, i64)> = Vec::with_capacity(tree.entries.len());
    for (l, level) in tree.levels.iter().enumerate() {
        for (j, (_, children)) in level.iter().enumerate() {
            let nodeno = first_nodeno[l] + j as i64;
            blob.fill(0);
            let node_depth = if l == 0 { depth } else { 0 };
            blob[0..2].copy_from_slice(&node_depth.to_be_bytes());
            blob[2..4].copy_from_slice(&(children.len() as u16).to_be_bytes());
            for (c, child) in children.clone().enumerate() {
                let cell = if l == leaf_level {
                    let e = tree.entries[child];
                    leaf_of.push((e.id, nodeno));
                    e
                } else {
                    let mut e = tree.levels[l + 1][child].0;
                    e.id = first_nodeno[l + 1] + child as i64;
                    e
                };
                let at = 4 + c * CELL_LEN;
                blob[at..at + 8].copy_from_slice(&cell.id.to_be_bytes());
                for (i, v) in [cell.min_x, cell.max_x, cell.min_y, cell.max_y].into_iter().enumerate() {
                    blob[at + 8 + 4 * i..at + 12 + 4 * i].copy_from_slice(&v.to_bits().to_be_bytes());
                }
            }
            insert_node.execute(params![nodeno, &blob[..]]).ctx("writing the R-tree")?;
            if l > 0 {
                let parent = first_nodeno[l - 1] + parent_index(&tree.levels[l - 1], j) as i64;
                insert_parent.execute([nodeno, parent]).ctx("writing the R-tree")?;
            }
        }
    }
    leaf_of.sort_unstable_by_key(|&(id, _)| id);
    let mut insert_rowid = conn
        .prepare(&format!("INSERT INTO {} (rowid, nodeno) VALUES (?1, ?2)", quote(&format!("{rtree}_rowid"))))
        .ctx("writing the R-tree")?;
    for (id, nodeno) in leaf_of {
        insert_rowid.execute([id, nodeno]).ctx("writing the R-tree")?;
    }
    Ok(())
}

/// The index of the node in `parents` whose child range holds `child`.
fn parent_index(parents: &[(Entry, std::ops::Range<usize>)], child: usize) -> usize {
    parents.partition_point(|(_, r)| r.end <= child)
}

/// Sorts entries along a Hilbert curve over their centres, so that each node covers a
/// compact area.
fn sort_by_hilbert(entries: &mut [Entry]) {
    if entries.len() < 2 {
        return;
    }
    let (mut lo_x, mut lo_y, mut hi_x, mut hi_y) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for e in entries.iter() {
        let (x, y) = e.center();
        lo_x = lo_x.min(x);
        lo_y = lo_y.min(y);
        hi_x = hi_x.max(x);
        hi_y = hi_y.max(y);
    }
    const SIDE: f64 = 65535.0;
    let scale = |v: f64, lo: f64, hi: f64| {
        if hi > lo {
            (((v - lo) / (hi - lo)) * SIDE).clamp(0.0, SIDE) as u32
        } else {
            0
        }
    };
    entries.sort_by_cached_key(|e| {
        let (x, y) = e.center();
        (hilbert_index(scale(x, lo_x, hi_x), scale(y, lo_y, hi_y)), e.id)
    });
}

/// Position of `(x, y)` (16-bit each) along the Hilbert curve of order 16.
fn hilbert_index(mut x: u32, mut y: u32) -> u64 {
    let n: u32 = 1 << 16;
    let mut d: u64 = 0;
    let mut s = n / 2;
    while s > 0 {
        let rx = u32::from(x & s > 0);
        let ry = u32::from(y & s > 0);
        d += u64::from(s) * u64::from(s) * u64::from((3 * rx) ^ ry);
        if ry == 0 {
            if rx == 1 {
                x = n - 1 - x;
                y = n - 1 - y;
            }
            std::mem::swap(&mut x, &mut y);
        }
        s /= 2;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_the_rtree_module() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE VIRTUAL TABLE r USING rtree(id, minx, maxx, miny, maxy)").unwrap();
        let values =
            [0.1, -0.1, 1e-40, -1e-40, 179.99999999, -179.99999999, 45.123456789, 0.0, 3.0e38, -3.0e38, 1.5, -0.3];
        for (i, d) in values.into_iter().enumerate() {
            conn.execute("INSERT INTO r VALUES (?1, ?2, ?2, ?2, ?2)", params![i as i64, d]).unwrap();
            let (lo, hi): (f64, f64) = conn
                .query_row("SELECT minx, maxx FROM r WHERE id = ?1", [i as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            assert_eq!((f64::from(round_down(d)), f64::from(round_up(d))), (lo, hi), "{d}");
        }
    }

    #[test]
    fn hilbert_covers_the_grid_once() {
        let mut seen = HashSet::new();
        let n = 1u32 << 16;
        for (x, y) in [(0, 0), (n - 1, 0), (0, n - 1), (n - 1, n - 1), (1, 0), (0, 1), (1, 1)] {
            assert!(seen.insert(hilbert_index(x, y)));
        }
        assert_eq!(hilbert_index(0, 0), 0);
    }

    #[test]
    fn packing_fills_nodes_evenly() {
        let entries: Vec<Entry> = (0..1000).map(|i| Entry::new(i, &Bbox::of_point(i as f64, (i % 7) as f64))).collect();
        let tree = pack(entries, 51);
        assert_eq!(tree.levels[0].len(), 1);
        let leaves = tree.levels.last().unwrap();
        assert_eq!(leaves.len(), 20);
        assert!(leaves.iter().all(|(_, r)| r.len() == 50));
        assert_eq!(tree.levels.len(), 2);
        let empty = pack(Vec::new(), 51);
        assert_eq!(empty.levels.len(), 1);
        assert!(empty.levels[0][0].1.is_empty());
    }
}
