use super::CaseGen;
use crate::schema::*;

impl CaseGen {
    // ---- scalar expressions -----------------------------------------------

    pub(crate) fn expr(&mut self, scope: &[SCol], ty: Ty, depth: u32) -> String {
        if ty == Ty::Bool {
            return self.pred(scope, depth);
        }
        let cols = cols_of(scope, ty);
        if depth == 0 || self.rng.chance(0.4) {
            if !cols.is_empty() && self.rng.chance(0.85) {
                return self.rng.pick(&cols).sql.clone();
            }
            if cols.is_empty() && self.rng.chance(0.7) {
                if let Some(e) = self.converted(scope, ty) {
                    return e;
                }
            }
            return self.lit(ty);
        }
        let d = depth - 1;
        match ty {
            Ty::Int => match self.rng.below(10) {
                0 => format!(
                    "({} + {})",
                    self.expr(scope, Ty::Int, d),
                    self.expr(scope, Ty::Int, d)
                ),
                1 => format!(
                    "({} - {})",
                    self.expr(scope, Ty::Int, d),
                    self.expr(scope, Ty::Int, d)
                ),
                2 => format!(
                    "({} * {})",
                    self.expr(scope, Ty::Int, d),
                    self.rng.range(0, 3)
                ),
                3 => format!("({} % 3)", self.expr(scope, Ty::Int, d)),
                4 => format!("({} / 2)", self.expr(scope, Ty::Int, d)),
                5 => format!("abs({})", self.expr(scope, Ty::Int, d)),
                6 => {
                    self.tag("string functions");
                    format!("length({})", self.expr(scope, Ty::Text, d))
                }
                7 => {
                    self.tag("COALESCE");
                    format!(
                        "COALESCE({}, {})",
                        self.expr(scope, Ty::Int, d),
                        self.lit(Ty::Int)
                    )
                }
                8 => self.case_expr(scope, Ty::Int, d),
                _ => format!("(- {})", self.expr(scope, Ty::Int, d)),
            },
            Ty::Text => {
                self.tag("string functions");
                match self.rng.below(10) {
                    0 => format!("upper({})", self.expr(scope, Ty::Text, d)),
                    1 => format!("lower({})", self.expr(scope, Ty::Text, d)),
                    2 => format!(
                        "concat({}, {})",
                        self.expr(scope, Ty::Text, d),
                        self.expr(scope, Ty::Text, d)
                    ),
                    3 => format!(
                        "({} || {})",
                        self.expr(scope, Ty::Text, d),
                        self.expr(scope, Ty::Text, d)
                    ),
                    4 => format!("substr({}, 1, 1)", self.expr(scope, Ty::Text, d)),
                    5 => {
                        self.tag("COALESCE");
                        format!(
                            "COALESCE({}, {})",
                            self.expr(scope, Ty::Text, d),
                            self.lit(Ty::Text)
                        )
                    }
                    6 => self.case_expr(scope, Ty::Text, d),
                    7 => format!("CAST({} AS text)", self.expr(scope, Ty::Int, d)),
                    8 => format!("replace({}, 'a', 'x')", self.expr(scope, Ty::Text, d)),
                    _ => format!(
                        "concat({}, '-', {})",
                        self.expr(scope, Ty::Text, d),
                        self.expr(scope, Ty::Int, d)
                    ),
                }
            }
            Ty::Num => match self.rng.below(8) {
                0 => format!(
                    "({} + {})",
                    self.expr(scope, Ty::Num, d),
                    self.expr(scope, Ty::Num, d)
                ),
                1 => format!(
                    "({} - {})",
                    self.expr(scope, Ty::Num, d),
                    self.expr(scope, Ty::Num, d)
                ),
                2 => format!(
                    "({} * {})",
                    self.expr(scope, Ty::Num, d),
                    self.rng.range(0, 3)
                ),
                3 => format!("abs({})", self.expr(scope, Ty::Num, d)),
                4 => {
                    self.tag("COALESCE");
                    format!(
                        "COALESCE({}, {})",
                        self.expr(scope, Ty::Num, d),
                        self.lit(Ty::Num)
                    )
                }
                5 => self.case_expr(scope, Ty::Num, d),
                6 => format!("CAST({} AS numeric(10,2))", self.expr(scope, Ty::Int, d)),
                _ => format!("(- {})", self.expr(scope, Ty::Num, d)),
            },
            Ty::Bool => unreachable!(),
        }
    }

    /// A value of `ty` derived from a column of another type, for scopes
    /// without a column of `ty` (so that expressions are not all constants).
    fn converted(&mut self, scope: &[SCol], ty: Ty) -> Option<String> {
        let texts = cols_of(scope, Ty::Text);
        let ints = cols_of(scope, Ty::Int);
        let bools = cols_of(scope, Ty::Bool);
        match ty {
            Ty::Int if !texts.is_empty() => Some(format!("length({})", self.rng.pick(&texts).sql)),
            Ty::Int if !bools.is_empty() => Some(format!(
                "CASE WHEN {} THEN 1 ELSE 0 END",
                self.rng.pick(&bools).sql
            )),
            Ty::Text if !ints.is_empty() => {
                Some(format!("CAST({} AS text)", self.rng.pick(&ints).sql))
            }
            Ty::Num if !ints.is_empty() => Some(format!(
                "CAST({} AS numeric(10,2))",
                self.rng.pick(&ints).sql
            )),
            _ => None,
        }
    }

    fn case_expr(&mut self, scope: &[SCol], ty: Ty, d: u32) -> String {
        self.tag("CASE");
        let cond = self.pred(scope, d);
        let then = self.expr(scope, ty, d);
        if self.rng.chance(0.2) {
            format!("CASE WHEN {cond} THEN {then} END")
        } else if self.rng.chance(0.3) {
            let cond2 = self.pred(scope, d);
            let then2 = self.expr(scope, ty, d);
            let els = self.expr(scope, ty, d);
            format!("CASE WHEN {cond} THEN {then} WHEN {cond2} THEN {then2} ELSE {els} END")
        } else {
            let els = self.expr(scope, ty, d);
            format!("CASE WHEN {cond} THEN {then} ELSE {els} END")
        }
    }

    /// A type that has columns in `scope`, preferring non-boolean ones.
    fn scope_ty(&mut self, scope: &[SCol], allow_bool: bool) -> Ty {
        let tys: Vec<Ty> = ALL_TYS
            .iter()
            .copied()
            .filter(|t| (allow_bool || *t != Ty::Bool) && scope.iter().any(|c| c.ty == *t))
            .collect();
        if tys.is_empty() {
            Ty::Int
        } else {
            *self.rng.pick(&tys)
        }
    }

    fn comparison(&mut self, scope: &[SCol], d: u32) -> String {
        let allow_bool = self.rng.chance(0.1);
        let ty = self.scope_ty(scope, allow_bool);
        let cols = cols_of(scope, ty);
        let lhs = if !cols.is_empty() && self.rng.chance(0.7) {
            self.rng.pick(&cols).sql.clone()
        } else {
            self.expr(scope, ty, d)
        };
        let rhs = if self.rng.chance(0.6) {
            self.lit(ty)
        } else {
            self.expr(scope, ty, d)
        };
        let op = ["=", "<>", "<", "<=", ">", ">="][self.rng.weighted(&[2, 3, 2, 2, 2, 2])];
        format!("({lhs} {op} {rhs})")
    }

    /// A boolean expression.
    pub(crate) fn pred(&mut self, scope: &[SCol], depth: u32) -> String {
        let bools = cols_of(scope, Ty::Bool);
        if depth == 0 || self.rng.chance(0.3) {
            if !bools.is_empty() && self.rng.chance(0.25) {
                return self.rng.pick(&bools).sql.clone();
            }
            return self.comparison(scope, 0);
        }
        let d = depth - 1;
        match self.rng.below(12) {
            0..=2 => self.comparison(scope, d),
            3 => {
                self.tag("AND/OR/NOT");
                format!("({} AND {})", self.pred(scope, d), self.pred(scope, d))
            }
            4 => {
                self.tag("AND/OR/NOT");
                format!("({} OR {})", self.pred(scope, d), self.pred(scope, d))
            }
            5 => {
                self.tag("AND/OR/NOT");
                format!("(NOT {})", self.pred(scope, d))
            }
            6 => {
                self.tag("IS [NOT] NULL");
                let ty = self.scope_ty(scope, true);
                let e = self.expr(scope, ty, d);
                let not = if self.rng.chance(0.5) { "NOT " } else { "" };
                format!("({e} IS {not}NULL)")
            }
            7 => {
                let ty = if self.rng.chance(0.6) {
                    Ty::Int
                } else {
                    Ty::Num
                };
                let e = self.expr(scope, ty, d);
                let (lo, hi) = (self.lit(ty), self.lit(ty));
                let not = if self.rng.chance(0.3) { "NOT " } else { "" };
                format!("({e} {not}BETWEEN {lo} AND {hi})")
            }
            8 => {
                let ty = if self.rng.chance(0.5) {
                    Ty::Int
                } else {
                    Ty::Text
                };
                let e = self.expr(scope, ty, d);
                let items: Vec<String> = (0..self.rng.range(1, 3)).map(|_| self.lit(ty)).collect();
                let not = if self.rng.chance(0.3) { "NOT " } else { "" };
                format!("({e} {not}IN ({}))", items.join(", "))
            }
            9 => {
                self.tag("string functions");
                let e = self.expr(scope, Ty::Text, d);
                let pat = *self.rng.pick(&["a%", "%b", "_", "%a%", "b%", "__"]);
                let not = if self.rng.chance(0.3) { "NOT " } else { "" };
                format!("({e} {not}LIKE '{pat}')")
            }
            10 => {
                self.tag("IS [NOT] DISTINCT FROM");
                let ty = self.scope_ty(scope, true);
                let a = self.expr(scope, ty, d);
                let b = if self.rng.chance(0.5) {
                    self.lit(ty)
                } else {
                    self.expr(scope, ty, d)
                };
                let not = if self.rng.chance(0.5) { "NOT " } else { "" };
                format!("({a} IS {not}DISTINCT FROM {b})")
            }
            _ => {
                if !bools.is_empty() {
                    self.rng.pick(&bools).sql.clone()
                } else {
                    self.comparison(scope, d)
                }
            }
        }
    }

    // ---- aggregates -------------------------------------------------------

    fn agg_arg(&mut self, scope: &[SCol], ty: Ty) -> String {
        let cols = cols_of(scope, ty);
        if !cols.is_empty() && self.rng.chance(0.75) {
            self.rng.pick(&cols).sql.clone()
        } else {
            self.expr(scope, ty, 1)
        }
    }

    pub(crate) fn agg(&mut self, scope: &[SCol]) -> (String, Ty) {
        match self.rng.below(11) {
            0 => {
                self.tag("count(*)");
                ("count(*)".into(), Ty::Int)
            }
            1 => {
                self.tag("count(x)");
                let ty = self.scope_ty(scope, true);
                (format!("count({})", self.agg_arg(scope, ty)), Ty::Int)
            }
            2 => {
                self.tag("count(DISTINCT x)");
                let ty = self.scope_ty(scope, true);
                (
                    format!("count(DISTINCT {})", self.agg_arg(scope, ty)),
                    Ty::Int,
                )
            }
            3 => {
                self.tag("sum");
                (format!("sum({})", self.agg_arg(scope, Ty::Int)), Ty::Int)
            }
            4 => {
                self.tag("sum");
                (format!("sum({})", self.agg_arg(scope, Ty::Num)), Ty::Num)
            }
            5 => {
                self.tag("avg");
                (
                    format!(
                        "CAST(avg({}) AS numeric(20,6))",
                        self.agg_arg(scope, Ty::Int)
                    ),
                    Ty::Num,
                )
            }
            6 | 7 => {
                self.tag("min/max");
                let ty = *self.rng.pick(&[Ty::Int, Ty::Text, Ty::Num]);
                let f = if self.rng.chance(0.5) { "min" } else { "max" };
                (format!("{f}({})", self.agg_arg(scope, ty)), ty)
            }
            8 | 9 => {
                self.tag("bool_and/bool_or");
                let f = if self.rng.chance(0.5) {
                    "bool_and"
                } else {
                    "bool_or"
                };
                (format!("{f}({})", self.agg_arg(scope, Ty::Bool)), Ty::Bool)
            }
            _ if self.ordered_agg_used => {
                self.tag("min/max");
                (format!("max({})", self.agg_arg(scope, Ty::Text)), Ty::Text)
            }
            _ => {
                self.tag("string_agg");
                self.ordered_agg_used = true;
                let e = self.agg_arg(scope, Ty::Text);
                (format!("string_agg({e}, ',' ORDER BY {e})"), Ty::Text)
            }
        }
    }

    pub(crate) fn having(&mut self, scope: &[SCol]) -> String {
        let (e, ty) = self.agg(scope);
        let op = *self.rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
        let p = match ty {
            Ty::Bool => e,
            Ty::Int => format!("{e} {op} {}", self.rng.range(0, 4)),
            Ty::Num | Ty::Text => format!("{e} {op} {}", self.lit(ty)),
        };
        if self.rng.chance(0.2) {
            format!("({p} OR count(*) > {})", self.rng.range(1, 3))
        } else {
            p
        }
    }
}
