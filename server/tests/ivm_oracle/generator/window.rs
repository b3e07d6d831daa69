use std::fmt::Write as _;

use super::CaseGen;
use crate::schema::*;

impl CaseGen {
    /// The columns a window shows: `scope[p]` for `p` in `pidx` as its
    /// partition, then `scope[o]` for `o` in `oidx` as its order, each in a
    /// random direction.
    fn window_cols(
        &mut self,
        scope: &[SCol],
        names: &mut Names,
        pidx: &[usize],
        oidx: &[usize],
    ) -> WindowCols {
        let mut w = WindowCols::default();
        for &i in pidx {
            let c = &scope[i];
            let n = names.take(&c.name);
            w.items.push(format!("{} AS {n}", c.sql));
            w.cols.push(Col { name: n, ty: c.ty });
            w.parts.push(c.sql.clone());
        }
        for &i in oidx {
            let c = scope[i].clone();
            let n = names.take(&c.name);
            w.items.push(format!("{} AS {n}", c.sql));
            w.cols.push(Col { name: n, ty: c.ty });
            w.order.push(self.order_item(&c.sql));
            w.ordered.push(c);
        }
        w
    }

    pub(crate) fn q_group_topn(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        let src = self.source(prim, all, 0.3);
        if src.scope.len() < 2 {
            return self.q_topn(prim, all);
        }
        self.tag("per-group top-N (ROW_NUMBER)");
        if src.is_join {
            self.tag("top-N over a join");
        }
        let mut names = Names::default();
        names.take("rn");
        let np = if self.rng.chance(0.8) { 1 } else { 2 };
        let idx = self.rng.sample(src.scope.len(), src.scope.len());
        let (pidx, rest) = idx.split_at(np.min(idx.len() - 1));
        let nothers = (self.rng.range(1, 3) as usize).min(rest.len());
        let WindowCols {
            mut items,
            mut cols,
            parts,
            mut order,
            ..
        } = self.window_cols(&src.scope, &mut names, pidx, &rest[..nothers]);
        if self.rng.chance(0.2) {
            self.tag("computed select expressions");
            let ty = self.any_ty();
            let e = self.expr(&src.scope, ty, 1);
            let n = names.take("e");
            items.push(format!("{e} AS {n}"));
            cols.push(Col { name: n, ty });
            order.push(self.order_item(&e));
        }
        let n = self.rng.range(1, 3);
        let mut inner = format!(
            "SELECT {}, ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {}) AS rn FROM {}",
            items.join(", "),
            parts.join(", "),
            order.join(", "),
            src.sql
        );
        if self.rng.chance(0.3) {
            let p = self.pred(&src.scope, 1);
            write!(inner, " WHERE {p}").unwrap();
        }
        if self.rng.chance(0.3) {
            let list: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            Query {
                sql: format!(
                    "SELECT {} FROM ({inner}) AS s WHERE rn <= {n}",
                    list.join(", ")
                ),
                cols,
            }
        } else {
            cols.push(Col {
                name: "rn".into(),
                ty: Ty::Int,
            });
            Query {
                sql: format!("SELECT * FROM ({inner}) AS s WHERE rn <= {n}"),
                cols,
            }
        }
    }

    /// Window functions (ranking, offsets, running and framed aggregates)
    /// over a random PARTITION BY / ORDER BY, sometimes a second window,
    /// sometimes filtered on a rank. The view shows only the partition and
    /// order columns and the functions' values, and functions read only
    /// those columns: rows that tie on every ORDER BY column are then
    /// identical, so the result is one multiset whichever way ties fall.
    pub(crate) fn q_window(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        let src = self.source(prim, all, 0.25);
        self.tag("window functions");
        if src.is_join {
            self.tag("window over a join");
        }
        let mut names = Names::default();
        let np = (self.rng.below(3)).min(src.scope.len().saturating_sub(1));
        let idx = self.rng.sample(src.scope.len(), src.scope.len());
        let (pidx, rest) = idx.split_at(np);
        let no = (self.rng.range(1, 2) as usize).min(rest.len());
        let WindowCols {
            mut items,
            mut cols,
            parts,
            order,
            ordered: args,
        } = self.window_cols(&src.scope, &mut names, pidx, &rest[..no]);
        if parts.is_empty() {
            self.tag("window without PARTITION BY");
        }
        let over = |parts: &[String], order: &[String]| -> String {
            let mut o = String::new();
            if !parts.is_empty() {
                write!(o, "PARTITION BY {}", parts.join(", ")).unwrap();
            }
            if !order.is_empty() {
                if !o.is_empty() {
                    o.push(' ');
                }
                write!(o, "ORDER BY {}", order.join(", ")).unwrap();
            }
            o
        };
        let main = over(&parts, &order);
        let mut rank_col = None;
        for k in 0..self.rng.range(1, 3) {
            // Now and then a second window: the whole input, ordered by the
            // partition columns too (so that its ties are the same rows as
            // the first window's). Tied rows then differ in the first
            // window's order-dependent values (row_number, lag, ROWS
            // frames), so the second window gets only functions that give
            // tied rows one value: ranks and aggregates over all peers.
            let second = k > 0 && self.rng.chance(0.25);
            let window = if second {
                self.tag("two windows");
                let mut all_order = order.clone();
                all_order.extend(parts.iter().map(|p| format!("{p} ASC")));
                over(&[], &all_order)
            } else {
                main.clone()
            };
            let a = self.rng.pick(&args).clone();
            let frame = if second {
                ""
            } else {
                *self.rng.pick(&[
                    "",
                    "",
                    " ROWS BETWEEN 1 PRECEDING AND CURRENT ROW",
                    " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING",
                    " ROWS BETWEEN CURRENT ROW AND 2 FOLLOWING",
                ])
            };
            let kind = if second {
                *self.rng.pick(&[1, 2, 5, 6, 7])
            } else {
                self.rng.below(9)
            };
            let (f, ty) = match kind {
                0 => ("row_number()".to_string(), Ty::Int),
                1 => ("rank()".to_string(), Ty::Int),
                2 => ("dense_rank()".to_string(), Ty::Int),
                3 => (format!("lag({})", a.sql), a.ty),
                4 if a.ty == Ty::Int => (format!("lead({}, 2, -1)", a.sql), Ty::Int),
                4 => (format!("lead({})", a.sql), a.ty),
                5 => ("count(*)".to_string(), Ty::Int),
                6 if matches!(a.ty, Ty::Int | Ty::Num) => (format!("sum({})", a.sql), a.ty),
                7 if a.ty != Ty::Bool => (format!("max({})", a.sql), a.ty),
                8 => (format!("first_value({})", a.sql), a.ty),
                _ => (format!("min({})", a.sql), a.ty),
            };
            let framed = !frame.is_empty()
                && !order.is_empty()
                && !f.starts_with("row_number")
                && !f.contains("rank")
                && !f.starts_with("lag")
                && !f.starts_with("lead");
            if framed {
                self.tag("window frame");
            }
            let n = names.take(&format!("w{k}"));
            items.push(format!(
                "{f} OVER ({window}{}) AS {n}",
                if framed { frame } else { "" }
            ));
            if f.contains("rank") && rank_col.is_none() {
                rank_col = Some(n.clone());
            }
            cols.push(Col { name: n, ty });
        }
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), src.sql);
        if self.rng.chance(0.3) {
            let p = self.pred(&src.scope, 1);
            write!(sql, " WHERE {p}").unwrap();
        }
        if let Some(r) = rank_col.filter(|_| self.rng.chance(0.5)) {
            self.tag("filter on a rank");
            let list: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            sql = format!(
                "SELECT {} FROM ({sql}) AS s WHERE {r} <= {}",
                list.join(", "),
                self.rng.range(1, 3)
            );
        }
        Query { sql, cols }
    }
}
