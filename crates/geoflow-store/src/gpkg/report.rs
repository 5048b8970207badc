//! A window's activity, in SQL over the catalog (see [`crate::report`]). Catalog timestamps
//! are RFC 3339 text of one width, so they compare as text.

use rusqlite::{params, Connection, Row};

use geoflow_core::row::Bbox;

use super::{to_rfc3339, Ctx};
use crate::report::{
    non_negative, ActivityRows, Durations, FailedJob, FeatureTotals, LoadAggregate, LoadOutcomes, Window,
    WindowActivity, MAX_FAILED_JOBS,
};
use crate::StoreError;

const CONTEXT: &str = "computing the report";

/// The loads finished in [?1, ?2), per dataset and (dataset NULL) over all of them: each
/// load counts once under its dataset and once under NULL. SQLite has no percentile
/// aggregate: the nearest-rank percentiles are the durations whose rank is ceil(p·n), in
/// integer arithmetic, as PostgreSQL's `percentile_disc` picks them.
const LOADS_SQL: &str = "
WITH l AS (
  SELECT CASE WHEN g.per_dataset THEN x.dataset END AS grouped, g.per_dataset, x.*
  FROM geoflow_loads x CROSS JOIN (SELECT 1 AS per_dataset UNION ALL SELECT 0) g
  WHERE x.finished_at >= ?1 AND x.finished_at < ?2
), ranked AS (
  SELECT per_dataset, grouped, duration_ms,
    row_number() OVER (PARTITION BY per_dataset, grouped ORDER BY duration_ms) AS rank,
    count(*) OVER (PARTITION BY per_dataset, grouped) AS n
  FROM l
), percentiles AS (
  SELECT per_dataset, grouped,
    max(CASE WHEN rank = (n + 1) / 2 THEN duration_ms END) AS p50,
    max(CASE WHEN rank = (95 * n + 99) / 100 THEN duration_ms END) AS p95
  FROM ranked GROUP BY per_dataset, grouped
)
SELECT l.grouped,
  count(*) FILTER (WHERE status = 'loaded'),
  count(*) FILTER (WHERE status = 'failed'),
  count(*) FILTER (WHERE status = 'unchanged'),
  coalesce(sum(features_read) FILTER (WHERE status <> 'unchanged'), 0),
  coalesce(sum(features_loaded) FILTER (WHERE status = 'loaded'), 0),
  coalesce(sum(invalid) FILTER (WHERE status <> 'unchanged'), 0),
  coalesce(sum(repaired) FILTER (WHERE status <> 'unchanged'), 0),
  coalesce(sum(skipped) FILTER (WHERE status <> 'unchanged'), 0),
  coalesce(total(area_m2) FILTER (WHERE status = 'loaded'), 0),
  coalesce(total(length_m) FILTER (WHERE status = 'loaded'), 0),
  min(min_x) FILTER (WHERE status = 'loaded'), min(min_y) FILTER (WHERE status = 'loaded'),
  max(max_x) FILTER (WHERE status = 'loaded'), max(max_y) FILTER (WHERE status = 'loaded'),
  coalesce(sum(bytes), 0),
  max(p.p50), max(p.p95), max(duration_ms)
FROM l JOIN percentiles p ON p.per_dataset = l.per_dataset AND p.grouped IS l.grouped
GROUP BY l.per_dataset, l.grouped";

/// Each dataset's sources and features as they stood at ?1: per source, the last of its
/// successful loads and removals before then decides.
const STATE_SQL: &str = "
WITH events AS (
  SELECT dataset, source_key, finished_at AS at, 0 AS kind, features_loaded AS rows
  FROM geoflow_loads WHERE status = 'loaded' AND finished_at < ?1
  UNION ALL
  SELECT dataset, source_key, removed_at, 1, NULL FROM geoflow_removals WHERE removed_at < ?1
), ranked AS (
  SELECT dataset, rows,
    row_number() OVER (PARTITION BY dataset, source_key ORDER BY at DESC, kind DESC) AS latest
  FROM events
)
SELECT dataset, count(rows), coalesce(sum(rows), 0) FROM ranked WHERE latest = 1 GROUP BY dataset";

pub fn activity(conn: &Connection, window: Window) -> Result<WindowActivity, StoreError> {
    let (start, end) = (to_rfc3339(window.start)?, to_rfc3339(window.end)?);
    let loads = rows(conn, LOADS_SQL, params![start, end], load_aggregate)?;
    // Invalid features of the loads that read their source; geometry types of what was stored.
    let counts_of = |column: &str, statuses: &str| {
        format!(
            "SELECT dataset, e.key, sum(e.value) FROM geoflow_loads, json_each({column}) e
             WHERE finished_at >= ?1 AND finished_at < ?2 AND status IN ({statuses})
             GROUP BY dataset, e.key"
        )
    };
    let triple = |r: &Row| Ok((r.get(0)?, r.get(1)?, non_negative(r.get(2)?)));
    let pair = |r: &Row| Ok((r.get(0)?, non_negative(r.get(1)?)));
    let invalid_reasons =
        rows(conn, &counts_of("problem_counts_json", "'loaded', 'failed'"), params![start, end], triple)?;
    let geometry_types = rows(conn, &counts_of("geometry_types_json", "'loaded'"), params![start, end], triple)?;
    // Jobs skipped without a load of their own: a redelivered event of an object version the
    // source already holds, or the removal of rows already gone. (A source whose content was
    // already loaded gets an `unchanged` load, counted above.)
    let skipped_jobs = rows(
        conn,
        "SELECT dataset, count(*) FROM geoflow_jobs j
         WHERE status = 'skipped-duplicate' AND finished_at >= ?1 AND finished_at < ?2
           AND NOT EXISTS (SELECT 1 FROM geoflow_loads l WHERE l.id = j.load_id AND l.status = 'unchanged')
         GROUP BY dataset",
        params![start, end],
        pair,
    )?;
    let removals = rows(
        conn,
        "SELECT dataset, count(*) FROM geoflow_removals WHERE removed_at >= ?1 AND removed_at < ?2 GROUP BY dataset",
        params![start, end],
        pair,
    )?;
    let states =
        rows(conn, STATE_SQL, params![end], |r| Ok((r.get(0)?, non_negative(r.get(1)?), non_negative(r.get(2)?))))?;
    let schema_changes = rows(
        conn,
        "SELECT dataset, source_key, at, changes FROM (
           SELECT dataset, source_key, finished_at AS at, schema_changes_json AS changes, 0 AS kind, id
           FROM geoflow_loads
           WHERE status = 'loaded' AND finished_at >= ?1 AND finished_at < ?2 AND schema_changes_json <> '[]'
           UNION ALL
           SELECT dataset, source_key, removed_at, schema_changes_json, 1, id FROM geoflow_removals
           WHERE removed_at >= ?1 AND removed_at < ?2 AND schema_changes_json <> '[]'
         )
         ORDER BY at, kind, id",
        params![start, end],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let failed = rows(
        conn,
        &format!(
            "SELECT id, dataset, source_key, finished_at, error, count(*) OVER ()
             FROM geoflow_jobs
             WHERE status = 'failed' AND finished_at >= ?1 AND finished_at < ?2
             ORDER BY finished_at, id
             LIMIT {MAX_FAILED_JOBS}"
        ),
        params![start, end],
        |r| {
            let job = FailedJob {
                job: r.get(0)?,
                dataset: r.get(1)?,
                source: r.get(2)?,
                finished_at: r.get(3)?,
                error: r.get(4)?,
            };
            Ok((job, non_negative(r.get(5)?)))
        },
    )?;
    Ok(ActivityRows {
        loads,
        invalid_reasons,
        geometry_types,
        skipped_jobs,
        removals,
        states,
        schema_changes,
        failed_jobs_total: failed.first().map_or(0, |(_, total)| *total),
        failed_jobs: failed.into_iter().map(|(job, _)| job).collect(),
    }
    .assemble())
}

fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnMut(&Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql).ctx(CONTEXT)?;
    let rows = statement.query_map(params, map).ctx(CONTEXT)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(CONTEXT)
}

fn load_aggregate(r: &Row) -> rusqlite::Result<LoadAggregate> {
    let n = |i: usize| r.get::<_, i64>(i).map(non_negative);
    let extent = match (r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?) {
        (Some(min_x), Some(min_y), Some(max_x), Some(max_y)) => Some(Bbox { min_x, min_y, max_x, max_y }),
        _ => None,
    };
    let durations = match (r.get::<_, Option<i64>>(16)?, r.get::<_, Option<i64>>(17)?, r.get::<_, Option<i64>>(18)?) {
        (Some(p50), Some(p95), Some(max)) => {
            Some(Durations { p50: non_negative(p50), p95: non_negative(p95), max: non_negative(max) })
        }
        _ => None,
    };
    Ok(LoadAggregate {
        dataset: r.get(0)?,
        loads: LoadOutcomes { succeeded: n(1)?, failed: n(2)?, skipped_duplicate: n(3)? },
        features: FeatureTotals { read: n(4)?, loaded: n(5)?, invalid: n(6)?, repaired: n(7)?, skipped: n(8)? },
        area_m2: r.get(9)?,
        length_m: r.get(10)?,
        extent,
        bytes: n(15)?,
        duration_ms: durations,
    })
}
