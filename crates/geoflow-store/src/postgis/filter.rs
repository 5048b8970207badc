//! A CQL2 [`Filter`] as a PostgreSQL condition: every literal a bound parameter, every
//! property through its column expression, the spatial functions those of PostGIS.

use tokio_postgres::types::Type;
use wkt::ToWkt;

use geoflow_core::schema::FieldType;

use super::features::{column_expr, Select, Table};
use crate::filter::{
    balanced, check_comparable, check_like, check_literal, Comparison, Filter, FilterError, Fold, Literal, Relation,
    TextTest,
};
use crate::layout::Column;
use crate::StoreError;

/// The condition of `filter` on the rows of `table`, its values bound in `select`.
pub(super) fn condition(select: &mut Select, table: &Table, filter: &Filter) -> Result<String, StoreError> {
    Ok(match filter {
        Filter::Constant(b) => b.to_string(),
        Filter::And(parts) => joined(select, table, parts, "AND", "true")?,
        Filter::Or(parts) => joined(select, table, parts, "OR", "false")?,
        Filter::Not(inner) => format!("NOT {}", condition(select, table, inner)?),
        Filter::Compare { key, op, value } => {
            let c = column(table, key)?;
            check_literal(key, c.ty, value).map_err(invalid)?;
            comparison(select, c, *op, value)
        }
        Filter::CompareProperties { left, op, right } => {
            let (l, r) = (column(table, left)?, column(table, right)?);
            check_comparable((left, l.ty), (right, r.ty)).map_err(invalid)?;
            let (l_expr, r_expr) = (column_expr(select, l), column_expr(select, r));
            // Text by code point, as literals are compared.
            let collate = if l.ty == FieldType::Text { " COLLATE \"C\"" } else { "" };
            format!("({l_expr}{collate} {} {r_expr})", op.sql())
        }
        Filter::Like { key, pattern } => {
            let c = column(table, key)?;
            check_like(key, c.ty).map_err(invalid)?;
            let column = column_expr(select, c);
            // The default escape of LIKE is `\`, as in CQL2.
            format!("({column} LIKE {})", select.bind(Box::new(pattern.clone()), Type::TEXT))
        }
        Filter::Insensitive { key, fold, test } => {
            let c = column(table, key)?;
            check_like(key, c.ty).map_err(invalid)?;
            let column = folded(&column_expr(select, c), *fold);
            match test {
                TextTest::Compare(op, value) => {
                    let p = select.bind(Box::new(value.clone()), Type::TEXT);
                    format!("({column} COLLATE \"C\" {} {p})", op.sql())
                }
                TextTest::Like(pattern) => {
                    format!("({column} LIKE {})", select.bind(Box::new(pattern.clone()), Type::TEXT))
                }
            }
        }
        Filter::IsNull { key } => {
            let c = column(table, key)?;
            let column = column_expr(select, c);
            if c.ty == FieldType::Json {
                // A JSON null is no value either.
                format!("({column} IS NULL OR jsonb_typeof({column}) = 'null')")
            } else {
                format!("({column} IS NULL)")
            }
        }
        Filter::Spatial { relation, geometry } => {
            let wkt = select.bind(Box::new(geometry.wkt_string()), Type::TEXT);
            let literal = format!("ST_GeomFromText({wkt}, 4326)");
            let function = postgis_function(*relation);
            if relation.needs_contact() {
                // `&&` first, so that the GIST index answers.
                format!("(geom && {literal} AND {function}(geom, {literal}))")
            } else {
                debug_assert_eq!(*relation, Relation::Disjoint);
                format!("{function}(geom, {literal})")
            }
        }
    })
}

/// `expr` folded as [`Fold::apply`] folds literals: the marks of the Combining Diacritical
/// Marks block dropped after canonical decomposition, then lowered by ICU's root locale (the
/// database's own collation may lower ASCII only, as "C" does).
fn folded(expr: &str, fold: Fold) -> String {
    let mut expr = expr.to_string();
    if fold.accents {
        expr = format!("regexp_replace(normalize({expr}, NFD), '[\\u0300-\\u036f]', '', 'g')");
    }
    if fold.case {
        expr = format!("lower({expr} COLLATE \"und-x-icu\")");
    }
    expr
}

fn postgis_function(relation: Relation) -> &'static str {
    match relation {
        Relation::Intersects => "ST_Intersects",
        Relation::Disjoint => "ST_Disjoint",
        Relation::Equals => "ST_Equals",
        Relation::Touches => "ST_Touches",
        Relation::Within => "ST_Within",
        Relation::Contains => "ST_Contains",
        Relation::Overlaps => "ST_Overlaps",
        Relation::Crosses => "ST_Crosses",
    }
}

fn joined(select: &mut Select, table: &Table, parts: &[Filter], by: &str, empty: &str) -> Result<String, StoreError> {
    if parts.is_empty() {
        return Ok(empty.to_string());
    }
    let parts = parts.iter().map(|p| condition(select, table, p)).collect::<Result<Vec<_>, _>>()?;
    Ok(balanced(parts, by))
}

fn invalid(e: FilterError) -> StoreError {
    StoreError::Invalid(format!("filter: {e}"))
}

fn column<'a>(table: &'a Table, key: &str) -> Result<&'a Column, StoreError> {
    table.columns.iter().find(|c| c.key == key).ok_or_else(|| invalid(FilterError::UnknownProperty(key.to_string())))
}

/// A column compared with a literal of its type (checked by the caller).
fn comparison(select: &mut Select, c: &Column, op: Comparison, value: &Literal) -> String {
    let column = column_expr(select, c);
    let op = op.sql();
    let value = match value {
        Literal::Text(s) => {
            // Ordered by code point, as SQLite orders text: the database's collation may not.
            let p = select.bind(Box::new(s.clone()), Type::TEXT);
            return format!("({column} COLLATE \"C\" {op} {p})");
        }
        Literal::Number(f) => match Literal::as_integer(*f).filter(|_| c.ty != FieldType::Real) {
            // Integers compare exactly, beyond 2^53 too.
            Some(i) => select.bind(Box::new(i), Type::INT8),
            None => select.bind(Box::new(*f), Type::FLOAT8),
        },
        Literal::Bool(b) => select.bind(Box::new(*b), Type::BOOL),
        Literal::Date(d) => select.bind(Box::new(*d), Type::DATE),
        Literal::Timestamp(t) => select.bind(Box::new(*t), Type::TIMESTAMPTZ),
    };
    format!("({column} {op} {value})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterLang;
    use geoflow_core::served_crs::ServedCrs;

    #[test]
    fn literals_are_parameters() {
        let table = Table {
            name: "t".into(),
            columns: vec![
                Column { key: "name".into(), name: "name".into(), ty: FieldType::Text, overflow: false },
                Column { key: "x".into(), name: "gf_overflow".into(), ty: FieldType::Json, overflow: true },
            ],
        };
        let types = |k: &str| table.columns.iter().find(|c| c.key == k).map(|c| c.ty);
        let text = "name LIKE 'a''; DROP TABLE t; --%' OR x IS NULL OR S_WITHIN(geometry, POINT(1 2))";
        let filter = Filter::parse(text, FilterLang::Text, &ServedCrs::crs84(), &types).unwrap();
        let mut select = Select::new(&table, &crate::FeatureQuery::default());
        let first = select.params.len();
        let sql = condition(&mut select, &table, &filter).unwrap();
        assert!(!sql.contains("DROP") && !sql.contains("POINT"), "{sql}");
        assert_eq!(select.params.len() - first, 3, "{sql}");
        assert!(sql.contains("geom && ST_GeomFromText("), "{sql}");
        assert!(sql.contains("jsonb_typeof"), "{sql}");
        let other = Table { name: "t".into(), columns: vec![] };
        assert!(matches!(condition(&mut select, &other, &filter), Err(StoreError::Invalid(m)) if m.contains("name")));
    }
}
