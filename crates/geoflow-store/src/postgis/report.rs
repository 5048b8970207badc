//! A window's activity, in SQL over the catalog (see [`crate::report`]).

use deadpool_postgres::Object;
use tokio_postgres::Row;

use geoflow_core::row::Bbox;

use super::catalog::RFC3339;
use super::{Ctx, PostgisStore};
use crate::report::{
    non_negative, ActivityRows, Durations, FailedJob, FeatureTotals, LoadAggregate, LoadOutcomes, Window,
    WindowActivity, MAX_FAILED_JOBS,
};
use crate::StoreError;

const CONTEXT: &str = "computing the report";

pub async fn activity(store: &PostgisStore, window: Window) -> Result<WindowActivity, StoreError> {
    let client = store.client().await?;
    let (start, end) = (&window.start, &window.end);
    let loads = query(store, &client, include_str!("sql/report_loads.sql"), &[start, end]).await?;
    // Invalid features of the loads that read their source; geometry types of what was stored.
    let counts_of = |column: &str, statuses: &str| {
        format!(
            "SELECT dataset, e.key, sum(e.value::bigint)::bigint FROM geoflow.loads, jsonb_each_text({column}) e
             WHERE finished_at >= $1 AND finished_at < $2 AND status IN ({statuses})
             GROUP BY dataset, e.key"
        )
    };
    let invalid_reasons =
        query(store, &client, &counts_of("problem_counts", "'loaded', 'failed'"), &[start, end]).await?;
    let geometry_types = query(store, &client, &counts_of("geometry_types", "'loaded'"), &[start, end]).await?;
    // Jobs skipped without a load of their own: a redelivered event of an object version the
    // source already holds, or the removal of rows already gone. (A source whose content was
    // already loaded gets an `unchanged` load, counted above.)
    let skipped_jobs = query(
        store,
        &client,
        "SELECT dataset, count(*) FROM geoflow.jobs j
         WHERE status = 'skipped-duplicate' AND finished_at >= $1 AND finished_at < $2
           AND NOT EXISTS (SELECT 1 FROM geoflow.loads l WHERE l.id = j.load_id AND l.status = 'unchanged')
         GROUP BY dataset",
        &[start, end],
    )
    .await?;
    let removals = query(
        store,
        &client,
        "SELECT dataset, count(*) FROM geoflow.removals WHERE removed_at >= $1 AND removed_at < $2 GROUP BY dataset",
        &[start, end],
    )
    .await?;
    let states = query(store, &client, include_str!("sql/report_state.sql"), &[end]).await?;
    let schema_changes = query(
        store,
        &client,
        &format!(
            "SELECT dataset, source_key, to_char(at AT TIME ZONE 'UTC', {RFC3339}), changes::text FROM (
               SELECT dataset, source_key, finished_at AS at, schema_changes AS changes, 0 AS kind, id
               FROM geoflow.loads
               WHERE status = 'loaded' AND finished_at >= $1 AND finished_at < $2 AND schema_changes <> '[]'
               UNION ALL
               SELECT dataset, source_key, removed_at, schema_changes, 1, id FROM geoflow.removals
               WHERE removed_at >= $1 AND removed_at < $2 AND schema_changes <> '[]'
             ) c
             ORDER BY at, kind, id"
        ),
        &[start, end],
    )
    .await?;
    let failed = query(
        store,
        &client,
        &format!(
            "SELECT id, dataset, source_key, to_char(finished_at AT TIME ZONE 'UTC', {RFC3339}), error,
               count(*) OVER ()
             FROM geoflow.jobs
             WHERE status = 'failed' AND finished_at >= $1 AND finished_at < $2
             ORDER BY finished_at, id
             LIMIT {MAX_FAILED_JOBS}"
        ),
        &[start, end],
    )
    .await?;

    let pairs =
        |rows: Vec<Row>| -> Vec<(String, u64)> { rows.iter().map(|r| (r.get(0), non_negative(r.get(1)))).collect() };
    let triples = |rows: Vec<Row>| -> Vec<(String, String, u64)> {
        rows.iter().map(|r| (r.get(0), r.get(1), non_negative(r.get(2)))).collect()
    };
    Ok(ActivityRows {
        loads: loads.iter().map(load_aggregate).collect(),
        invalid_reasons: triples(invalid_reasons),
        geometry_types: triples(geometry_types),
        skipped_jobs: pairs(skipped_jobs),
        removals: pairs(removals),
        states: states.iter().map(|r| (r.get(0), non_negative(r.get(1)), non_negative(r.get(2)))).collect(),
        schema_changes: schema_changes.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect(),
        failed_jobs_total: failed.first().map_or(0, |r| non_negative(r.get(5))),
        failed_jobs: failed
            .iter()
            .map(|r| FailedJob {
                job: r.get(0),
                dataset: r.get(1),
                source: r.get(2),
                finished_at: r.get(3),
                error: r.get(4),
            })
            .collect(),
    }
    .assemble())
}

async fn query(
    store: &PostgisStore,
    client: &Object,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    client.query(sql, params).await.ctx(store, CONTEXT)
}

fn load_aggregate(r: &Row) -> LoadAggregate {
    let n = |i: usize| non_negative(r.get(i));
    let extent = match (r.get(11), r.get(12), r.get(13), r.get(14)) {
        (Some(min_x), Some(min_y), Some(max_x), Some(max_y)) => Some(Bbox { min_x, min_y, max_x, max_y }),
        _ => None,
    };
    let durations = match (r.get::<_, Option<i64>>(16), r.get::<_, Option<i64>>(17), r.get::<_, Option<i64>>(18)) {
        (Some(p50), Some(p95), Some(max)) => {
            Some(Durations { p50: non_negative(p50), p95: non_negative(p95), max: non_negative(max) })
        }
        _ => None,
    };
    LoadAggregate {
        dataset: r.get(0),
        loads: LoadOutcomes { succeeded: n(1), failed: n(2), skipped_duplicate: n(3) },
        features: FeatureTotals { read: n(4), loaded: n(5), invalid: n(6), repaired: n(7), skipped: n(8) },
        area_m2: r.get(9),
        length_m: r.get(10),
        extent,
        bytes: n(15),
        duration_ms: durations,
    }
}
