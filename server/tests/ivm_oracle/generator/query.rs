use std::fmt::Write as _;

use super::CaseGen;
use crate::schema::*;

impl CaseGen {
    // ---- FROM sources -----------------------------------------------------

    fn pick_rel(&mut self, rels: &[Rel]) -> Rel {
        let derived: Vec<&Rel> = rels.iter().filter(|r| r.kind != RelKind::Table).collect();
        if !derived.is_empty() && self.rng.chance(0.45) {
            derived[self.rng.below(derived.len())].clone()
        } else {
            rels[self.rng.below(rels.len())].clone()
        }
    }

    fn note_rel(&mut self, r: &Rel) {
        match r.kind {
            RelKind::View => self.tag("view on an earlier view"),
            RelKind::Cte => self.tag("CTE"),
            RelKind::Table => {}
        }
    }

    fn single(&mut self, rels: &[Rel]) -> Source {
        let rel = self.pick_rel(rels);
        self.note_rel(&rel);
        let a = self.alias();
        Source {
            sql: format!("{} AS {a}", rel.name),
            scope: scope_of(&rel, &a),
            is_join: false,
        }
    }

    /// An equi-join of two relations (None if no pair with a common key type
    /// was found).
    fn join(&mut self, left: &[Rel], right: &[Rel]) -> Option<Source> {
        for _ in 0..8 {
            let l = self.pick_rel(left);
            let r = self.pick_rel(right);
            let mut pairs: Vec<(String, String)> = Vec::new();
            for lc in &l.cols {
                for rc in &r.cols {
                    if lc.ty == rc.ty && matches!(lc.ty, Ty::Int | Ty::Text) {
                        pairs.push((lc.name.clone(), rc.name.clone()));
                    }
                }
            }
            if pairs.is_empty() {
                continue;
            }
            self.note_rel(&l);
            self.note_rel(&r);
            if l.kind == RelKind::View || r.kind == RelKind::View {
                self.tag("join involving a view");
            }
            let (la, ra) = (self.alias(), self.alias());
            let kinds = [
                ("JOIN", "inner join"),
                ("LEFT JOIN", "left join"),
                ("RIGHT JOIN", "right join"),
                ("FULL JOIN", "full join"),
            ];
            let (kind, tag) = kinds[self.rng.weighted(&[4, 3, 2, 2])];
            self.tag(tag);
            let (lk, rk) = pairs[self.rng.below(pairs.len())].clone();
            let mut on = format!("{la}.{lk} = {ra}.{rk}");
            if pairs.len() > 1 && self.rng.chance(0.15) {
                let (lk2, rk2) = pairs[self.rng.below(pairs.len())].clone();
                if (lk2.as_str(), rk2.as_str()) != (lk.as_str(), rk.as_str()) {
                    self.tag("multi-column equi-join");
                    on = format!("{on} AND {la}.{lk2} = {ra}.{rk2}");
                }
            }
            let mut scope = scope_of(&l, &la);
            scope.extend(scope_of(&r, &ra));
            if self.rng.chance(0.3) {
                self.tag("join ON with extra non-equi condition");
                let extra = if self.rng.chance(0.5) {
                    // A comparison across the two sides.
                    let mut cross = Vec::new();
                    for lc in &l.cols {
                        for rc in &r.cols {
                            if lc.ty == rc.ty && lc.ty != Ty::Bool {
                                cross.push((lc.name.clone(), rc.name.clone()));
                            }
                        }
                    }
                    let (x, y) = cross[self.rng.below(cross.len())].clone();
                    let op = *self.rng.pick(&["<", "<=", ">", ">=", "<>"]);
                    format!("{la}.{x} {op} {ra}.{y}")
                } else {
                    self.pred(&scope, 1)
                };
                on = format!("{on} AND {extra}");
            }
            return Some(Source {
                sql: format!("{} AS {la} {kind} {} AS {ra} ON {on}", l.name, r.name),
                scope,
                is_join: true,
            });
        }
        None
    }

    pub(crate) fn source(&mut self, prim: &[Rel], all: &[Rel], join_p: f64) -> Source {
        if self.rng.chance(join_p) {
            if let Some(s) = self.join(prim, all) {
                return s;
            }
        }
        self.single(prim)
    }

    /// Some columns of `scope` and sometimes computed expressions, aliased
    /// with unique names.
    fn projection(
        &mut self,
        scope: &[SCol],
        min: usize,
        max: usize,
        computed_p: f64,
    ) -> (Vec<String>, Vec<Col>) {
        let mut names = Names::default();
        let k = (self.rng.range(min as i64, max as i64) as usize)
            .min(scope.len())
            .max(1);
        let mut items = Vec::new();
        let mut cols = Vec::new();
        for i in self.rng.sample(scope.len(), k) {
            let c = &scope[i];
            let n = names.take(&c.name);
            items.push(format!("{} AS {n}", c.sql));
            cols.push(Col { name: n, ty: c.ty });
        }
        let mut e = 0;
        while e < 2 && self.rng.chance(computed_p) {
            e += 1;
            self.tag("computed select expressions");
            let ty = self.any_ty();
            let x = self.expr(scope, ty, 2);
            let n = names.take("e");
            items.push(format!("{x} AS {n}"));
            cols.push(Col { name: n, ty });
        }
        (items, cols)
    }

    // ---- query shapes -----------------------------------------------------

    pub(crate) fn query(&mut self, prim: &[Rel], all: &[Rel], allow_cte: bool) -> Query {
        let w = [
            10,
            12,
            14,
            5,
            6,
            8,
            8,
            8,
            8,
            5,
            if allow_cte { 7 } else { 0 },
            7,
        ];
        match self.rng.weighted(&w) {
            0 => self.q_filter(prim),
            1 => self.q_join(prim, all),
            2 => self.q_group(prim, all, false),
            3 => self.q_group(prim, all, true),
            4 => self.q_distinct(prim, all),
            5 => self.q_setop(prim, all),
            6 => self.q_topn(prim, all),
            7 => self.q_group_topn(prim, all),
            8 => self.q_subquery_filter(prim, all),
            9 => self.q_scalar_subquery(prim, all),
            10 => self.q_cte(prim, all),
            _ => self.q_window(prim, all),
        }
    }

    fn q_filter(&mut self, prim: &[Rel]) -> Query {
        self.tag("filter/project");
        let src = self.single(prim);
        let (items, cols) = self.projection(&src.scope, 1, 4, 0.5);
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), src.sql);
        if self.rng.chance(0.8) {
            let p = self.pred(&src.scope, 2);
            write!(sql, " WHERE {p}").unwrap();
        }
        Query { sql, cols }
    }

    fn q_join(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        let Some(src) = self.join(prim, all) else {
            return self.q_filter(prim);
        };
        let (items, cols) = self.projection(&src.scope, 2, 5, 0.3);
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), src.sql);
        if self.rng.chance(0.3) {
            let p = self.pred(&src.scope, 2);
            write!(sql, " WHERE {p}").unwrap();
        }
        Query { sql, cols }
    }

    fn q_group(&mut self, prim: &[Rel], all: &[Rel], global: bool) -> Query {
        let src = self.source(prim, all, 0.35);
        self.ordered_agg_used = false;
        if src.is_join {
            self.tag("aggregate over a join");
        }
        let mut names = Names::default();
        let mut items = Vec::new();
        let mut cols = Vec::new();
        let mut gexprs: Vec<String> = Vec::new();
        if global {
            self.tag("global aggregate");
        } else {
            self.tag("GROUP BY");
            let ng = if self.rng.chance(0.7) { 1 } else { 2 };
            for _ in 0..ng {
                let (e, ty, base) = if self.rng.chance(0.2) {
                    self.tag("GROUP BY expression");
                    let ty = *self.rng.pick(&[Ty::Int, Ty::Text, Ty::Bool]);
                    (self.expr(&src.scope, ty, 1), ty, "g".to_string())
                } else {
                    let c = self.rng.pick(&src.scope).clone();
                    (c.sql, c.ty, c.name)
                };
                if gexprs.contains(&e) {
                    continue;
                }
                let n = names.take(&base);
                items.push(format!("{e} AS {n}"));
                cols.push(Col { name: n, ty });
                gexprs.push(e);
            }
        }
        for _ in 0..self.rng.range(1, 4) {
            let (e, ty) = self.agg(&src.scope);
            let n = names.take("agg");
            items.push(format!("{e} AS {n}"));
            cols.push(Col { name: n, ty });
        }
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), src.sql);
        if self.rng.chance(0.4) {
            let p = self.pred(&src.scope, 2);
            write!(sql, " WHERE {p}").unwrap();
        }
        if !global {
            write!(sql, " GROUP BY {}", gexprs.join(", ")).unwrap();
        }
        if self.rng.chance(if global { 0.1 } else { 0.3 }) {
            self.tag("HAVING");
            let h = self.having(&src.scope);
            write!(sql, " HAVING {h}").unwrap();
        }
        Query { sql, cols }
    }

    fn q_distinct(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        self.tag("DISTINCT");
        let src = self.source(prim, all, 0.25);
        let (items, cols) = self.projection(&src.scope, 1, 3, 0.3);
        let mut sql = format!("SELECT DISTINCT {} FROM {}", items.join(", "), src.sql);
        if self.rng.chance(0.5) {
            let p = self.pred(&src.scope, 2);
            write!(sql, " WHERE {p}").unwrap();
        }
        Query { sql, cols }
    }

    fn setop_branch(&mut self, rels: &[Rel], sig: &[Ty]) -> (String, Vec<Col>) {
        let src = self.single(rels);
        let mut names = Names::default();
        let mut items = Vec::new();
        let mut cols = Vec::new();
        for &ty in sig {
            let cs = cols_of(&src.scope, ty);
            let (e, base) = if !cs.is_empty() && self.rng.chance(0.7) {
                let c = *self.rng.pick(&cs);
                (c.sql.clone(), c.name.clone())
            } else {
                (self.expr(&src.scope, ty, 1), "e".to_string())
            };
            let n = names.take(&base);
            items.push(format!("{e} AS {n}"));
            cols.push(Col { name: n, ty });
        }
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), src.sql);
        if self.rng.chance(0.5) {
            let p = self.pred(&src.scope, 1);
            write!(sql, " WHERE {p}").unwrap();
        }
        (sql, cols)
    }

    fn q_setop(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        let n = self.rng.range(1, 3) as usize;
        let sig: Vec<Ty> = (0..n).map(|_| self.any_ty()).collect();
        // INTERSECT ALL / EXCEPT ALL are left out: the batch engine ignores
        // multiplicities for them (see the module documentation).
        let ops = ["UNION", "UNION ALL", "INTERSECT", "EXCEPT"];
        let op = ops[self.rng.weighted(&[3, 3, 2, 2])];
        self.tag(match op {
            "UNION" => "UNION",
            "UNION ALL" => "UNION ALL",
            "INTERSECT" => "INTERSECT",
            _ => "EXCEPT",
        });
        let (left, cols) = self.setop_branch(prim, &sig);
        let (right, _) = self.setop_branch(all, &sig);
        let mut sql = format!("{left} {op} {right}");
        if self.rng.chance(0.15) {
            self.tag("three-branch set operation");
            let op2 = *self.rng.pick(&["UNION", "UNION ALL"]);
            let (third, _) = self.setop_branch(all, &sig);
            sql = format!("{sql} {op2} {third}");
        }
        Query { sql, cols }
    }

    pub(crate) fn order_item(&mut self, e: &str) -> String {
        let dir = if self.rng.chance(0.5) { "ASC" } else { "DESC" };
        let nulls = match self.rng.below(3) {
            0 => " NULLS FIRST",
            1 => " NULLS LAST",
            _ => "",
        };
        format!("{e} {dir}{nulls}")
    }

    pub(crate) fn q_topn(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        self.tag("ORDER BY ... LIMIT");
        let src = self.source(prim, all, 0.35);
        if src.is_join {
            self.tag("top-N over a join");
        }
        let (items, cols) = self.projection(&src.scope, 1, 4, 0.25);
        // Ordering by every output column makes the result deterministic:
        // rows that tie on all of them are identical.
        let mut order: Vec<String> = Vec::new();
        for i in self.rng.sample(cols.len(), cols.len()) {
            let name = cols[i].name.clone();
            order.push(self.order_item(&name));
        }
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), src.sql);
        if self.rng.chance(0.4) {
            let p = self.pred(&src.scope, 2);
            write!(sql, " WHERE {p}").unwrap();
        }
        write!(
            sql,
            " ORDER BY {} LIMIT {}",
            order.join(", "),
            self.rng.range(1, 5)
        )
        .unwrap();
        if self.rng.chance(0.35) {
            self.tag("OFFSET");
            write!(sql, " OFFSET {}", self.rng.range(1, 3)).unwrap();
        }
        Query { sql, cols }
    }

    /// Pairs of same-typed (int or text) columns of two scopes.
    fn key_pairs(a: &[SCol], b: &[SCol]) -> Vec<(SCol, SCol)> {
        let mut out = Vec::new();
        for x in a {
            for y in b {
                if x.ty == y.ty && matches!(x.ty, Ty::Int | Ty::Text) {
                    out.push((x.clone(), y.clone()));
                }
            }
        }
        out
    }

    fn q_subquery_filter(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        let src = self.single(prim);
        let other = self.pick_rel(all);
        self.note_rel(&other);
        let b = self.alias();
        let bscope = scope_of(&other, &b);
        let pairs = Self::key_pairs(&src.scope, &bscope);
        let form = self.rng.below(5);
        let cond = if form <= 3 && !pairs.is_empty() {
            let (x, y) = pairs[self.rng.below(pairs.len())].clone();
            let not = form % 2 == 1;
            if form <= 1 {
                self.tag(if not {
                    "NOT IN (subquery)"
                } else {
                    "IN (subquery)"
                });
                let mut sub = format!("SELECT {} FROM {} AS {b}", y.sql, other.name);
                if self.rng.chance(0.5) {
                    let p = self.pred(&bscope, 1);
                    write!(sub, " WHERE {p}").unwrap();
                }
                format!("{} {}IN ({sub})", x.sql, if not { "NOT " } else { "" })
            } else {
                self.tag(if not { "NOT EXISTS" } else { "EXISTS" });
                let mut sub = format!(
                    "SELECT 1 FROM {} AS {b} WHERE {} = {}",
                    other.name, y.sql, x.sql
                );
                if self.rng.chance(0.4) {
                    let p = self.pred(&bscope, 1);
                    write!(sub, " AND {p}").unwrap();
                }
                format!("{}EXISTS ({sub})", if not { "NOT " } else { "" })
            }
        } else {
            self.tag("scalar subquery in WHERE");
            let xs = cols_of(&src.scope, Ty::Int);
            let x = if xs.is_empty() {
                self.lit(Ty::Int)
            } else {
                self.rng.pick(&xs).sql.clone()
            };
            let ys = cols_of(&bscope, Ty::Int);
            let agg = if ys.is_empty() {
                "count(*)".to_string()
            } else {
                let y = self.rng.pick(&ys).sql.clone();
                match self.rng.below(4) {
                    0 => "count(*)".to_string(),
                    1 => format!("max({y})"),
                    2 => format!("min({y})"),
                    _ => format!("sum({y})"),
                }
            };
            let mut sub = format!("SELECT {agg} FROM {} AS {b}", other.name);
            if !pairs.is_empty() && self.rng.chance(0.6) {
                self.tag("correlated subquery");
                let (k1, k2) = pairs[self.rng.below(pairs.len())].clone();
                write!(sub, " WHERE {} = {}", k2.sql, k1.sql).unwrap();
            }
            let op = *self.rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
            format!("{x} {op} ({sub})")
        };
        let (items, cols) = self.projection(&src.scope, 1, 4, 0.25);
        let mut sql = format!("SELECT {} FROM {} WHERE {cond}", items.join(", "), src.sql);
        if self.rng.chance(0.3) {
            let p = self.pred(&src.scope, 1);
            write!(sql, " AND {p}").unwrap();
        }
        Query { sql, cols }
    }

    fn q_scalar_subquery(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        self.tag("scalar subquery in SELECT");
        let src = self.single(prim);
        let other = self.pick_rel(all);
        self.note_rel(&other);
        let b = self.alias();
        let bscope = scope_of(&other, &b);
        let non_bool: Vec<&SCol> = bscope.iter().filter(|c| c.ty != Ty::Bool).collect();
        let ints = cols_of(&bscope, Ty::Int);
        let (agg, ty) = match self.rng.below(4) {
            1 | 2 if !non_bool.is_empty() => {
                let y = (*self.rng.pick(&non_bool)).clone();
                let f = if self.rng.chance(0.5) { "max" } else { "min" };
                (format!("{f}({})", y.sql), y.ty)
            }
            3 if !ints.is_empty() => (format!("sum({})", self.rng.pick(&ints).sql), Ty::Int),
            _ => ("count(*)".to_string(), Ty::Int),
        };
        let mut sub = format!("SELECT {agg} FROM {} AS {b}", other.name);
        let pairs = Self::key_pairs(&src.scope, &bscope);
        if !pairs.is_empty() && self.rng.chance(0.7) {
            self.tag("correlated subquery");
            let (x, y) = pairs[self.rng.below(pairs.len())].clone();
            write!(sub, " WHERE {} = {}", y.sql, x.sql).unwrap();
        }
        let (mut items, mut cols) = self.projection(&src.scope, 1, 3, 0.2);
        let mut n = "sq".to_string();
        while cols.iter().any(|c| c.name == n) {
            n.push('_');
        }
        items.push(format!("({sub}) AS {n}"));
        cols.push(Col { name: n, ty });
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), src.sql);
        if self.rng.chance(0.3) {
            let p = self.pred(&src.scope, 1);
            write!(sql, " WHERE {p}").unwrap();
        }
        Query { sql, cols }
    }

    fn q_cte(&mut self, prim: &[Rel], all: &[Rel]) -> Query {
        self.tag("CTE");
        let inner = self.query(prim, all, false);
        self.cte_n += 1;
        let name = format!("w{}", self.cte_n);
        let rel = Rel {
            name: name.clone(),
            cols: inner.cols.clone(),
            kind: RelKind::Cte,
        };
        let mut all2 = all.to_vec();
        all2.push(rel.clone());
        let outer = self.query(&[rel], &all2, false);
        Query {
            sql: format!("WITH {name} AS ({}) {}", inner.sql, outer.sql),
            cols: outer.cols,
        }
    }
}
