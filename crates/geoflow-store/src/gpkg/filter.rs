//! A CQL2 [`Filter`] as an SQLite condition: every literal a bound parameter, every property
//! through its column expression. SQLite has no spatial functions here, so `gf_relate` (see
//! [`register_functions`]) decides the spatial relations with `geo`, after the R-tree has
//! sorted out the rows whose envelope cannot touch the literal's; `gf_fold` folds case and
//! accents for `CASEI` and `ACCENTI` as literals are folded.

use geo::{BoundingRect, Geometry};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use wkt::{ToWkt, TryFromWkt};

use geoflow_core::schema::FieldType;

use super::features::to_geo;
use super::geometry::parse_header;
use super::rtree::rtree_name;
use super::table::{column_expr, quote};
use crate::filter::{
    balanced, check_comparable, check_like, check_literal, date_text, like_to_glob, timestamp_text, Filter,
    FilterError, Fold, Literal, Relation, TextTest,
};
use crate::layout::{Column, Layout};
use crate::StoreError;

/// The condition of `filter` on the rows of `layout`'s table, its values appended to `params`
/// in the order of their placeholders.
pub(super) fn condition(layout: &Layout, filter: &Filter, params: &mut Vec<Value>) -> Result<String, StoreError> {
    Ok(match filter {
        Filter::Constant(b) => i32::from(*b).to_string(),
        Filter::And(parts) => joined(layout, parts, "AND", "1", params)?,
        Filter::Or(parts) => joined(layout, parts, "OR", "0", params)?,
        Filter::Not(inner) => format!("NOT {}", condition(layout, inner, params)?),
        Filter::Compare { key, op, value } => {
            let c = column(layout, key)?;
            check_literal(key, c.ty, value).map_err(invalid)?;
            params.push(stored(c, value));
            format!("({} {} ?)", column_expr(c), op.sql())
        }
        Filter::CompareProperties { left, op, right } => {
            let (l, r) = (column(layout, left)?, column(layout, right)?);
            check_comparable((left, l.ty), (right, r.ty)).map_err(invalid)?;
            // Dates and date-times are stored as text that orders as they do.
            format!("({} {} {})", column_expr(l), op.sql(), column_expr(r))
        }
        Filter::Like { key, pattern } => {
            let c = column(layout, key)?;
            check_like(key, c.ty).map_err(invalid)?;
            // GLOB is case-sensitive, as LIKE is in PostgreSQL (SQLite's LIKE is not).
            params.push(Value::Text(like_to_glob(pattern)));
            format!("({} GLOB ?)", column_expr(c))
        }
        Filter::Insensitive { key, fold, test } => {
            let c = column(layout, key)?;
            check_like(key, c.ty).map_err(invalid)?;
            let flags = u8::from(fold.case) | u8::from(fold.accents) << 1;
            let column = format!("gf_fold({}, {flags})", column_expr(c));
            match test {
                TextTest::Compare(op, value) => {
                    params.push(Value::Text(value.clone()));
                    format!("({column} {} ?)", op.sql())
                }
                TextTest::Like(pattern) => {
                    params.push(Value::Text(like_to_glob(pattern)));
                    format!("({column} GLOB ?)")
                }
            }
        }
        Filter::IsNull { key } => {
            let c = column(layout, key)?;
            let column = column_expr(c);
            if c.ty == FieldType::Json {
                // A JSON null is no value either.
                format!("({column} IS NULL OR {column} = 'null')")
            } else {
                format!("({column} IS NULL)")
            }
        }
        Filter::Spatial { relation, geometry } => spatial(layout, *relation, geometry, params),
    })
}

fn spatial(layout: &Layout, relation: Relation, geometry: &Geometry<f64>, params: &mut Vec<Value>) -> String {
    let exact = "gf_relate(geom, ?, ?)";
    let exact_params = [Value::Text(relation.name().into()), Value::Text(geometry.wkt_string())];
    let Some(envelope) = geometry.bounding_rect().filter(|_| relation.needs_contact()) else {
        params.extend(exact_params);
        return exact.to_string();
    };
    // Only rows whose envelope meets the literal's can share a point with it. A row without
    // geometry gives NULL, as PostGIS's functions do, so that NOT leaves it out as well.
    let rtree = quote(&rtree_name(&layout.table));
    params.extend([envelope.max().x, envelope.min().x, envelope.max().y, envelope.min().y].map(Value::Real));
    params.extend(exact_params);
    format!(
        "(CASE WHEN geom IS NULL THEN NULL \
         WHEN fid IN (SELECT id FROM {rtree} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?) THEN {exact} \
         ELSE 0 END)"
    )
}

fn joined(
    layout: &Layout,
    parts: &[Filter],
    by: &str,
    empty: &str,
    params: &mut Vec<Value>,
) -> Result<String, StoreError> {
    if parts.is_empty() {
        return Ok(empty.to_string());
    }
    let parts = parts.iter().map(|p| condition(layout, p, params)).collect::<Result<Vec<_>, _>>()?;
    Ok(balanced(parts, by))
}

fn invalid(e: FilterError) -> StoreError {
    StoreError::Invalid(format!("filter: {e}"))
}

fn column<'a>(layout: &'a Layout, key: &str) -> Result<&'a Column, StoreError> {
    layout.columns.iter().find(|c| c.key == key).ok_or_else(|| invalid(FilterError::UnknownProperty(key.to_string())))
}

/// A literal as the column stores its values (see the loader): booleans as 0 and 1, dates
/// and date-times as their text, which orders as they do.
fn stored(c: &Column, value: &Literal) -> Value {
    match value {
        Literal::Text(s) => Value::Text(s.clone()),
        Literal::Number(f) => match Literal::as_integer(*f).filter(|_| c.ty != FieldType::Real) {
            Some(i) => Value::Integer(i),
            None => Value::Real(*f),
        },
        Literal::Bool(b) => Value::Integer(i64::from(*b)),
        Literal::Date(d) => Value::Text(date_text(*d)),
        Literal::Timestamp(t) => Value::Text(timestamp_text(*t)),
    }
}

/// Registers `gf_relate(geom, relation, wkt)`: whether a stored GeoPackage geometry stands in
/// the named [`Relation`] to the WKT literal (parsed once per statement); NULL without a
/// geometry.
pub(super) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("gf_relate", 3, flags, relate)?;
    conn.create_scalar_function("gf_fold", 2, flags, fold)
}

/// `gf_fold(text, flags)`: the text folded by [`Fold::apply`], case with flag 1, accents with
/// flag 2 (SQLite's own `lower` lowers ASCII only); NULL stays NULL.
fn fold(ctx: &Context<'_>) -> rusqlite::Result<Option<String>> {
    let flags = ctx.get::<i64>(1)?;
    let fold = Fold { case: flags & 1 != 0, accents: flags & 2 != 0 };
    match ctx.get_raw(0) {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => Ok(Some(fold.apply(&String::from_utf8_lossy(bytes)))),
        _ => Err(rusqlite::Error::UserFunctionError("gf_fold: not text".into())),
    }
}

fn relate(ctx: &Context<'_>) -> rusqlite::Result<Option<bool>> {
    let fail = |what: String| rusqlite::Error::UserFunctionError(format!("gf_relate: {what}").into());
    let literal = ctx.get_or_create_aux(2, |v: ValueRef<'_>| -> Result<Geometry<f64>, String> {
        let text = v.as_str().map_err(|e| e.to_string())?;
        Geometry::try_from_wkt_str(text).map_err(|e| e.to_string())
    })?;
    let name = ctx.get_raw(1).as_str().map_err(|e| fail(e.to_string()))?;
    let relation = Relation::from_name(name).ok_or_else(|| fail(format!("no relation {name:?}")))?;
    let blob = match ctx.get_raw(0) {
        ValueRef::Null => return Ok(None),
        ValueRef::Blob(blob) => blob,
        _ => return Err(fail("the geometry is not a blob".into())),
    };
    let header = parse_header(blob).ok_or_else(|| fail("a geometry without a GeoPackage header".into()))?;
    let geometry = if header.empty {
        Geometry::GeometryCollection(geo::GeometryCollection::default())
    } else {
        to_geo(header.wkb).map_err(|e| fail(e.to_string()))?
    };
    Ok(Some(relation.holds(&geometry, &literal)))
}
