//! Vector tiles from PostGIS: `ST_AsMVT` over `ST_AsMVTGeom`, one statement per tile (see
//! `sql/tile.sql` and [`crate::tiles`] for the rules). The tile geometries are made once; a
//! tile over the size budget is encoded again from them, coarser, within the same statement,
//! skipping unencoded the encodings that a floor under their size shows cannot fit.
//!
//! The statement text depends only on the dataset's layout (its table and sanitised column
//! names, quoted); the tile, its tile matrix set's SRID, the tolerances, the layer name and
//! the budget are parameters, so both tile matrix sets share one prepared statement. Property
//! columns are aliased `p0`, `p1`, … in the statement, since original keys may be anything
//! (and longer than an identifier may be): the keys of the encoded layer are then replaced
//! with the original ones, so no key is ever SQL text.

use deadpool_postgres::Object;
use geozero::mvt::{Message, Tile};
use tokio_postgres::types::ToSql;

use geoflow_core::dataset::DatasetName;
use geoflow_core::schema::FieldType;

use super::features::{fill, prepare_cached, table, Table};
use super::table::{datetime_text, qualified, quote_ident};
use super::{Ctx, PostgisStore};
use crate::layout::{Column, OVERFLOW_COLUMN};
use crate::tiles::{Detail, EncodedTile, TileId, BUFFER, DETAILS, TILE_BUDGET_BYTES};
use crate::StoreError;

const TILE_SQL: &str = include_str!("sql/tile.sql");

/// The property value of a column as the tile carries it: numbers and booleans as they are,
/// dates and date-times as the text they were loaded from, JSON values as their text (a
/// string as its characters).
fn value_expr(c: &Column) -> String {
    let column = format!("t.{}", quote_ident(&c.name));
    match c.ty {
        FieldType::Date => format!("to_char({column}, 'YYYY-MM-DD')"),
        FieldType::DateTime => datetime_text(&column),
        FieldType::Json => format!("{column} #>> '{{}}'"),
        _ => column,
    }
}

/// The rows of one coarser encoding of a tile: the tile geometries simplified further, and
/// thinned to one feature per cell (the lowest `fid`) when the detail says so.
fn coarser_rows(detail: &Detail, aliases: &str) -> String {
    let rows = format!(
        "SELECT s.fid, ST_Simplify(s.geom, {:?}, true) AS geom{aliases} FROM shaped AS s WHERE s.geom IS NOT NULL",
        detail.simplify_px
    );
    match detail.thin_px {
        None => rows,
        Some(cell) => {
            // The box is stored with the geometry: no vertex is read.
            let cell = |axis: &str| format!("floor(ST_{axis}Min(k.geom::box2d) / {cell:?})");
            format!(
                "{rows} AND s.fid IN (SELECT min(k.fid) FROM shaped AS k WHERE k.geom IS NOT NULL GROUP BY {}, {})",
                cell("X"),
                cell("Y")
            )
        }
    }
}

/// How a tile's statement names the properties: the own columns by aliases (`p0`, `p1`, …,
/// or with a longer prefix should an overflow key look like one), and the overflow column as
/// one jsonb column, which `ST_AsMVT` spreads into properties under their own keys (strings,
/// numbers and booleans; nested values and nulls are left out, as in every tile).
struct TileColumns {
    own: Vec<Column>,
    overflow: bool,
    prefix: String,
}

impl TileColumns {
    fn new(columns: &[Column]) -> TileColumns {
        let own: Vec<Column> = columns.iter().filter(|c| !c.overflow).cloned().collect();
        let overflow_keys: Vec<&str> = columns.iter().filter(|c| c.overflow).map(|c| c.key.as_str()).collect();
        let mut prefix = String::from("p");
        while overflow_keys.iter().any(|k| Self::index_in(k, &prefix).is_some()) {
            prefix.push('_');
        }
        TileColumns { own, overflow: !overflow_keys.is_empty(), prefix }
    }

    /// The own column an alias with `prefix` stands for.
    fn index_in(key: &str, prefix: &str) -> Option<usize> {
        let digits = key.strip_prefix(prefix)?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
    }
}

/// The statement of a tile of `table`.
fn statement(table: &str, columns: &TileColumns) -> String {
    let mut properties = String::new();
    let mut aliases = String::new();
    let mut s_aliases = String::new();
    let p = &columns.prefix;
    for (i, c) in columns.own.iter().enumerate() {
        properties.push_str(&format!(", {} AS {p}{i}", value_expr(c)));
        aliases.push_str(&format!(", c.{p}{i}"));
        s_aliases.push_str(&format!(", s.{p}{i}"));
    }
    if columns.overflow {
        let o = quote_ident(OVERFLOW_COLUMN);
        properties.push_str(&format!(", t.{o}"));
        aliases.push_str(&format!(", c.{o}"));
        s_aliases.push_str(&format!(", s.{o}"));
    }
    // A floor: overflow properties only add to it.
    let least_property_bytes = if columns.own.is_empty() {
        "0".to_string()
    } else {
        // A function takes at most 100 arguments: count the non-nulls by groups.
        let values: Vec<String> = (0..columns.own.len()).map(|i| format!("s.{p}{i}")).collect();
        let nonnulls = values.chunks(100).map(|g| format!("num_nonnulls({})", g.join(", "))).collect::<Vec<_>>();
        let nonnulls = nonnulls.join(" + ");
        format!("2 * sum({nonnulls}) + 2 * count(*) FILTER (WHERE {nonnulls} > 0)")
    };
    let encode = |rows: String| format!("(SELECT ST_AsMVT(f, $12::text, 4096, 'geom', 'fid') FROM ({rows}) AS f)");
    let fitting = |mvt: String| format!("(SELECT m FROM {mvt} AS e(m) WHERE length(m) <= $13::integer)");
    let skip_over = |floor: &str| format!("WHEN (SELECT {floor}) > $13::integer THEN NULL");
    let tries: Vec<String> = DETAILS
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mvt = if i == 0 { "finest".to_string() } else { encode(coarser_rows(d, &s_aliases)) };
            if i + 1 == DETAILS.len() {
                // The last is taken whatever its size.
                return mvt;
            }
            match (i, d.thin_px) {
                (_, Some(_)) => fitting(mvt),
                (0, None) => format!("CASE {} ELSE {} END", skip_over("least_bytes FROM stats"), fitting(mvt)),
                (_, None) => format!(
                    "CASE {} {} ELSE {} END",
                    skip_over("least_bytes FROM stats"),
                    skip_over("bytes FROM property_floor"),
                    fitting(mvt)
                ),
            }
        })
        .collect();
    let encodings = format!("COALESCE(\n  {}\n)", tries.join(",\n  "));
    let table = qualified(table);
    fill(
        TILE_SQL,
        &[
            ("properties", properties.as_str()),
            ("columns", aliases.as_str()),
            ("table", table.as_str()),
            ("least_property_bytes", least_property_bytes.as_str()),
            ("encodings", encodings.as_str()),
        ],
    )
}

/// The tile, with the keys still `p0`, `p1`, …, and the count of features in it.
async fn encode(
    store: &PostgisStore,
    client: &Object,
    sql: &str,
    dataset: &DatasetName,
    tile: TileId,
) -> Result<(Vec<u8>, u64), StoreError> {
    let context = "encoding a vector tile";
    let statement = prepare_cached(store, client, sql, context).await?;
    let [min_x, min_y, max_x, max_y] = tile.bounds();
    let srid = tile.tms.srid();
    let [west, south, east, north] = tile.bounds_lonlat(f64::from(BUFFER));
    let pixel = tile.pixel();
    let tolerance = DETAILS[0].simplify_px * pixel;
    let layer = dataset.as_str();
    let budget = i32::try_from(TILE_BUDGET_BYTES).unwrap_or(i32::MAX);
    let params: [&(dyn ToSql + Sync); 13] =
        [&min_x, &min_y, &max_x, &max_y, &srid, &west, &south, &east, &north, &tolerance, &pixel, &layer, &budget];
    let row = client.query_one(&statement, &params).await.ctx(store, context)?;
    let bytes: Option<Vec<u8>> = row.try_get(0).ctx(store, context)?;
    let in_tile: i64 = row.try_get(1).ctx(store, context)?;
    Ok((bytes.unwrap_or_default(), u64::try_from(in_tile).unwrap_or(0)))
}

/// Replaces the aliased keys of the decoded tile by the original ones (overflow keys are
/// theirs).
fn with_original_keys(tile: &mut Tile, columns: &TileColumns, all: &[Column]) -> Result<(), StoreError> {
    for layer in &mut tile.layers {
        for key in &mut layer.keys {
            let column = TileColumns::index_in(key, &columns.prefix).and_then(|i| columns.own.get(i));
            match column {
                Some(c) => c.key.clone_into(key),
                None if all.iter().any(|c| c.overflow && c.key == *key) => {}
                None => {
                    return Err(StoreError::db(
                        "reading the tile PostGIS encoded",
                        super::Message(format!("unexpected property key {key:?}")),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The tile `tile` of `dataset` (empty when no feature is in it); `None` when there is no
/// such dataset.
pub async fn tile(
    store: &PostgisStore,
    dataset: &DatasetName,
    tile: TileId,
) -> Result<Option<EncodedTile>, StoreError> {
    let client = store.client().await?;
    let Table { name, columns } = match table(store, &client, dataset).await {
        Ok(table) => table,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let tile_columns = TileColumns::new(&columns);
    let (bytes, in_tile) = encode(store, &client, &statement(&name, &tile_columns), dataset, tile).await?;
    if bytes.len() > TILE_BUDGET_BYTES {
        tracing::warn!(dataset = dataset.as_str(), %tile, bytes = bytes.len(), "tile over budget at the coarsest detail");
    }
    if bytes.is_empty() {
        return Ok(Some(EncodedTile { bytes, omitted: in_tile }));
    }
    let mut decoded = Tile::decode(&bytes[..]).map_err(|e| StoreError::db("reading the tile PostGIS encoded", e))?;
    with_original_keys(&mut decoded, &tile_columns, &columns)?;
    let encoded: u64 = decoded.layers.iter().map(|l| l.features.len() as u64).sum();
    Ok(Some(EncodedTile { bytes: decoded.encode_to_vec(), omitted: in_tile.saturating_sub(encoded) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_reach_the_statement() {
        let hostile = "it's \"x\"; DROP TABLE t; --";
        let columns = vec![
            Column { key: hostile.into(), name: "it_s_x".into(), ty: FieldType::Text, overflow: false },
            Column { key: "when".into(), name: "when".into(), ty: FieldType::DateTime, overflow: false },
            Column { key: "{rows}".into(), name: "{rows}".into(), ty: FieldType::Json, overflow: false },
        ];
        let sql = statement("my \"table\"", &TileColumns::new(&columns));
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(sql.contains(r#"FROM "datasets"."my ""table""" AS t"#), "{sql}");
        assert!(sql.contains(r#"t."it_s_x" AS p0"#) && sql.contains("AS p2") && sql.contains("c.p2"), "{sql}");
        assert!(sql.contains("s.fid, ST_Simplify(s.geom, 4.0, true) AS geom, s.p0, s.p1, s.p2 FROM"), "{sql}");
        assert!(sql.contains(r#"t."{rows}" #>> '{}' AS p2"#), "{sql}");
        assert_eq!(sql.matches("GROUP BY floor(ST_XMin(k.geom::box2d)").count(), 2, "{sql}");
        // Each detail's encoding, and the one without properties that bounds the simplified ones.
        assert_eq!(sql.matches("ST_AsMVT(").count(), DETAILS.len() + 1, "{sql}");
        assert_eq!(sql.matches("(SELECT bytes FROM property_floor)").count(), 2, "{sql}");
        assert_eq!(sql.matches("(SELECT least_bytes FROM stats)").count(), 3, "{sql}");
        assert!(sql.contains("sum(num_nonnulls(s.p0, s.p1, s.p2))"), "{sql}");
        assert!(statement("t", &TileColumns::new(&[])).contains("11 * count(*) + 0 AS least_bytes"));
    }

    #[test]
    fn aliased_keys_become_the_original_ones() {
        use geozero::mvt::tile::{Feature, Layer, Value};
        let columns = vec![
            Column { key: "Name Ü".into(), name: "name_u".into(), ty: FieldType::Text, overflow: false },
            Column { key: "pop".into(), name: "pop".into(), ty: FieldType::Integer, overflow: false },
        ];
        let layer = Layer {
            version: 2,
            name: "t".into(),
            features: vec![Feature { id: Some(3), tags: vec![0, 0], ..Feature::default() }],
            keys: vec!["p1".into(), "p0".into()],
            values: vec![Value { int_value: Some(5), ..Value::default() }],
            extent: Some(4096),
        };
        let mut out = Tile { layers: vec![layer] };
        let tile_columns = TileColumns::new(&columns);
        with_original_keys(&mut out, &tile_columns, &columns).unwrap();
        assert_eq!(out.layers[0].keys, ["pop", "Name Ü"]);
        assert_eq!(out.layers[0].features[0].id, Some(3));
        let mut bad =
            Tile { layers: vec![Layer { keys: vec!["p9".into()], version: 2, name: "t".into(), ..Layer::default() }] };
        assert!(with_original_keys(&mut bad, &tile_columns, &columns).is_err());
    }

    #[test]
    fn overflow_keys_that_look_like_aliases_change_the_aliases() {
        use geozero::mvt::tile::Layer;
        let columns = vec![
            Column { key: "a".into(), name: "a".into(), ty: FieldType::Text, overflow: false },
            Column::overflow("p0"),
            Column::overflow("p_"),
        ];
        let tile_columns = TileColumns::new(&columns);
        assert_eq!(tile_columns.prefix, "p_");
        let sql = statement("t", &tile_columns);
        assert!(sql.contains(r#"t."a" AS p_0"#) && sql.contains(r#", t."gf_overflow""#), "{sql}");
        let layer = Layer { keys: vec!["p0".into(), "p_0".into()], version: 2, name: "t".into(), ..Layer::default() };
        let mut out = Tile { layers: vec![layer] };
        with_original_keys(&mut out, &tile_columns, &columns).unwrap();
        assert_eq!(out.layers[0].keys, ["p0", "a"]);
    }
}
