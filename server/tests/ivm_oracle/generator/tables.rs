use std::collections::{BTreeMap, BTreeSet};

use super::CaseGen;
use crate::common::sql_str;
use crate::schema::*;

impl CaseGen {
    // ---- tables and values ------------------------------------------------

    pub(crate) fn tables(&mut self) -> Vec<TableState> {
        let n = self.rng.range(2, 3);
        let mut out = Vec::new();
        for t in 1..=n {
            let mut cols = vec![Col {
                name: "id".into(),
                ty: Ty::Int,
            }];
            let ncols = self.rng.range(2, 3);
            let mut counts: BTreeMap<Ty, u32> = BTreeMap::new();
            for k in 0..ncols {
                // The first column is usually an int so that joins find keys.
                let ty = if k == 0 && self.rng.chance(0.7) {
                    Ty::Int
                } else {
                    ALL_TYS[self.rng.weighted(&[3, 3, 2, 2])]
                };
                let c = counts.entry(ty).or_default();
                *c += 1;
                let prefix = match ty {
                    Ty::Int => "i",
                    Ty::Text => "s",
                    Ty::Num => "n",
                    Ty::Bool => "f",
                };
                cols.push(Col {
                    name: format!("{prefix}{c}"),
                    ty,
                });
            }
            out.push(TableState {
                def: TableDef {
                    name: format!("t{t}"),
                    cols,
                },
                ids: Vec::new(),
                max_id: 0,
            });
        }
        out
    }

    /// A literal of `ty` for expressions (never NULL).
    pub(crate) fn lit(&mut self, ty: Ty) -> String {
        match ty {
            Ty::Int => {
                let v = self.rng.range(-1, 5);
                if v < 0 {
                    format!("({v})")
                } else {
                    v.to_string()
                }
            }
            Ty::Text => {
                let i = self.rng.weighted(&TEXT_WEIGHTS);
                sql_str(TEXTS[i])
            }
            Ty::Num => {
                let v = *self.rng.pick(&NUMS);
                if v.starts_with('-') {
                    format!("({v})")
                } else {
                    v.to_string()
                }
            }
            Ty::Bool => (*self.rng.pick(&["TRUE", "FALSE"])).to_string(),
        }
    }

    /// A column value for a table row: small domains so that joins and
    /// groups collide, NULL sometimes.
    fn value(&mut self, ty: Ty) -> String {
        if self.rng.chance(0.15) {
            return "NULL".into();
        }
        match ty {
            Ty::Int => self.rng.range(0, 4).to_string(),
            Ty::Text => {
                let i = self.rng.weighted(&TEXT_WEIGHTS);
                sql_str(TEXTS[i])
            }
            Ty::Num => (*self.rng.pick(&NUMS)).to_string(),
            Ty::Bool => (*self.rng.pick(&["true", "false"])).to_string(),
        }
    }

    // ---- DML --------------------------------------------------------------

    fn fresh_id(t: &mut TableState) -> i64 {
        t.max_id += 1;
        t.max_id
    }

    fn existing_id(&mut self, t: &TableState) -> Option<i64> {
        if t.ids.is_empty() {
            None
        } else {
            Some(t.ids[self.rng.below(t.ids.len())])
        }
    }

    /// An id that usually exists in the table.
    fn target_id(&mut self, t: &TableState) -> i64 {
        match self.existing_id(t) {
            Some(id) if self.rng.chance(0.85) => id,
            _ => self.rng.range(1, t.max_id.max(1) + 1),
        }
    }

    fn row(&mut self, t: &TableDef, id: i64) -> String {
        let mut vals = vec![id.to_string()];
        for c in &t.cols[1..] {
            vals.push(self.value(c.ty));
        }
        format!("({})", vals.join(", "))
    }

    pub(crate) fn insert_fresh(&mut self, t: &mut TableState, n: usize) -> String {
        let rows: Vec<String> = (0..n)
            .map(|_| {
                let id = Self::fresh_id(t);
                self.row(&t.def, id)
            })
            .collect();
        format!("INSERT INTO {} VALUES {}", t.def.name, rows.join(", "))
    }

    /// A value expression for `SET col = …` that keeps the domain small.
    fn set_value(&mut self, t: &TableDef, col: &Col) -> String {
        if self.rng.chance(0.5) {
            return self.value(col.ty);
        }
        let c = &col.name;
        let others: Vec<&Col> = t.cols[1..]
            .iter()
            .filter(|o| o.ty == col.ty && o.name != *c)
            .collect();
        match col.ty {
            Ty::Int => match self.rng.below(4) {
                0 => format!("(COALESCE({c}, 0) + 1) % 5"),
                1 => format!("{c} - 1"),
                2 if !others.is_empty() => self.rng.pick(&others).name.clone(),
                _ => format!("COALESCE({c}, 2)"),
            },
            Ty::Text => match self.rng.below(4) {
                0 => format!("upper({c})"),
                1 => format!("lower({c})"),
                2 => format!("substr(concat({c}, 'b'), 1, 2)"),
                _ => format!("COALESCE({c}, 'a')"),
            },
            Ty::Num => match self.rng.below(3) {
                0 => format!("{c} + 0.25"),
                1 => format!("(- {c})"),
                _ => format!("COALESCE({c}, 0.00)"),
            },
            Ty::Bool => match self.rng.below(3) {
                0 => format!("NOT {c}"),
                1 => format!("COALESCE({c}, true)"),
                _ => {
                    let ints: Vec<&Col> = t.cols[1..].iter().filter(|o| o.ty == Ty::Int).collect();
                    if ints.is_empty() {
                        format!("{c} IS NULL")
                    } else {
                        format!("({} > 2)", self.rng.pick(&ints).name)
                    }
                }
            },
        }
    }

    /// A WHERE clause for UPDATE/DELETE.
    fn dml_where(&mut self, t: &TableState) -> String {
        match self.rng.weighted(&[45, 20, 35]) {
            0 => format!("id = {}", self.target_id(t)),
            1 => {
                let ids: Vec<String> = (0..self.rng.range(2, 4))
                    .map(|_| self.target_id(t).to_string())
                    .collect();
                format!("id IN ({})", ids.join(", "))
            }
            _ => {
                let scope = t.def.bare_scope();
                self.pred(&scope, 1)
            }
        }
    }

    /// One random DML statement; returns the index of the table it writes.
    pub(crate) fn dml(&mut self, tables: &mut [TableState]) -> (usize, String) {
        let ti = self.rng.below(tables.len());
        let t = &mut tables[ti];
        let name = t.def.name.clone();
        let sql = match self.rng.weighted(&[16, 16, 10, 24, 9, 16, 4]) {
            // single-row insert (sometimes of an existing id: must fail atomically)
            0 => {
                let id = match self.existing_id(t) {
                    Some(id) if self.rng.chance(0.1) => id,
                    _ => Self::fresh_id(t),
                };
                format!("INSERT INTO {name} VALUES {}", self.row(&t.def, id))
            }
            // multi-row insert, sometimes with a duplicate key somewhere
            1 => {
                let n = self.rng.range(2, 5) as usize;
                let mut ids: Vec<i64> = (0..n).map(|_| Self::fresh_id(t)).collect();
                if self.rng.chance(0.12) {
                    let dup = match self.existing_id(t) {
                        Some(id) if self.rng.chance(0.6) => id,
                        _ => ids[0],
                    };
                    ids[n - 1] = dup;
                }
                let rows: Vec<String> = ids.iter().map(|&id| self.row(&t.def, id)).collect();
                format!("INSERT INTO {name} VALUES {}", rows.join(", "))
            }
            // upsert
            2 => {
                let n = self.rng.range(1, 3) as usize;
                let mut ids = BTreeSet::new();
                for _ in 0..n {
                    let id = match self.existing_id(t) {
                        Some(id) if self.rng.chance(0.6) => id,
                        _ => Self::fresh_id(t),
                    };
                    ids.insert(id);
                }
                let rows: Vec<String> = ids.iter().map(|&id| self.row(&t.def, id)).collect();
                let action = if self.rng.chance(0.35) {
                    "DO NOTHING".to_string()
                } else {
                    let k = self.rng.range(1, (t.def.cols.len() - 1) as i64) as usize;
                    let sets: Vec<String> = self
                        .rng
                        .sample(t.def.cols.len() - 1, k)
                        .into_iter()
                        .map(|i| {
                            let c = &t.def.cols[i + 1].name;
                            format!("{c} = EXCLUDED.{c}")
                        })
                        .collect();
                    format!("DO UPDATE SET {}", sets.join(", "))
                };
                format!(
                    "INSERT INTO {name} VALUES {} ON CONFLICT (id) {action}",
                    rows.join(", ")
                )
            }
            // update of non-key columns
            3 => {
                let k = self.rng.range(1, 2.min((t.def.cols.len() - 1) as i64)) as usize;
                let def = t.def.clone();
                let sets: Vec<String> = self
                    .rng
                    .sample(def.cols.len() - 1, k)
                    .into_iter()
                    .map(|i| {
                        let c = &def.cols[i + 1];
                        format!("{} = {}", c.name, self.set_value(&def, c))
                    })
                    .collect();
                let w = self.dml_where(t);
                format!("UPDATE {name} SET {} WHERE {w}", sets.join(", "))
            }
            // update of the primary key
            4 => match self.rng.below(3) {
                0 => {
                    let from = self.target_id(t);
                    let to = Self::fresh_id(t);
                    format!("UPDATE {name} SET id = {to} WHERE id = {from}")
                }
                1 => {
                    let shift = 1000 * self.rng.range(1, 3);
                    let w = self.dml_where(t);
                    let def = t.def.clone();
                    let c = &def.cols[1 + self.rng.below(def.cols.len() - 1)];
                    let v = self.set_value(&def, c);
                    format!(
                        "UPDATE {name} SET id = id + {shift}, {} = {v} WHERE {w}",
                        c.name
                    )
                }
                _ => {
                    // Usually collides with an existing key: must fail atomically.
                    let from = self.target_id(t);
                    let to = self.target_id(t);
                    format!("UPDATE {name} SET id = {to} WHERE id = {from}")
                }
            },
            // delete
            5 if self.rng.chance(0.05) => {
                // Empty the table (global aggregates over no rows, …).
                format!("DELETE FROM {name} WHERE id >= 0")
            }
            5 => {
                let w = if self.rng.chance(0.6) {
                    format!("id = {}", self.target_id(t))
                } else {
                    self.dml_where(t)
                };
                format!("DELETE FROM {name} WHERE {w}")
            }
            // INSERT … SELECT from the same table, with shifted keys
            _ => {
                let off = 10_000 * self.rng.range(1, 4);
                let cols: Vec<String> = t.def.cols[1..].iter().map(|c| c.name.clone()).collect();
                let scope = t.def.bare_scope();
                let p = self.pred(&scope, 1);
                format!(
                    "INSERT INTO {name} SELECT id + {off}, {} FROM {name} WHERE {p}",
                    cols.join(", ")
                )
            }
        };
        (ti, sql)
    }
}
