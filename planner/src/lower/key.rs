//! The key of a materialized view's contents: the columns its rows are
//! unique by, when the plan's shape shows it (see `TableDef::view_key`).

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// The columns a new view's rows are unique by (its optimized plan), which
/// then key its contents (see [`TableDef::view_key`]). Decided once, when
/// the view is created, and kept in the catalog: a view keeps its layout.
pub fn view_key(optimized: &LogicalPlan) -> Option<Vec<usize>> {
    unique_columns(optimized).map(|mut cols| {
        cols.sort_unstable();
        cols
    })
}

/// The output columns `plan`'s rows are unique by, when its shape shows it:
/// a GROUP BY's keys (without grouping sets), through filters (HAVING),
/// aliases, sorts and limits (top-N), and projections that keep each key
/// column as it is or through a cast that keeps distinct values distinct.
fn unique_columns(plan: &LogicalPlan) -> Option<Vec<usize>> {
    match plan {
        // A global aggregate (no keys) keeps the general layout.
        LogicalPlan::Aggregate(a) => {
            let sets = a
                .group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)));
            (!sets && !a.group_expr.is_empty()).then(|| (0..a.group_expr.len()).collect())
        }
        LogicalPlan::Filter(f) => unique_columns(&f.input),
        LogicalPlan::SubqueryAlias(s) => unique_columns(&s.input),
        LogicalPlan::Sort(s) => unique_columns(&s.input),
        LogicalPlan::Limit(l) => unique_columns(&l.input),
        LogicalPlan::Projection(p) => {
            let input = p.input.schema();
            unique_columns(&p.input)?
                .into_iter()
                .map(|c| p.expr.iter().position(|e| keeps_column(e, input, c)))
                .collect()
        }
        _ => None,
    }
}

/// Whether `e` is input column `c`, possibly renamed or cast without
/// merging values (to a wider integer, or between string types).
fn keeps_column(e: &Expr, input: &datafusion::common::DFSchema, c: usize) -> bool {
    match e {
        Expr::Alias(a) => keeps_column(&a.expr, input, c),
        Expr::Column(col) => input.index_of_column(col).ok() == Some(c),
        Expr::Cast(cast) => {
            let from = input.field(c).data_type();
            injective_cast(from, cast.field.data_type()) && keeps_column(&cast.expr, input, c)
        }
        _ => false,
    }
}

fn injective_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let signed = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    let text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    from == to
        || (text(from) && text(to))
        || matches!((signed(from), signed(to)), (Some(a), Some(b)) if a <= b)
}
