use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::runner::{Case, Mismatch, Rows, Step};
use crate::shrink::{shrink, Shrunk};

fn slt_value(v: &Option<String>) -> String {
    match v.as_deref() {
        None => "NULL".into(),
        Some("") => "(empty)".into(),
        Some(s) => s.into(),
    }
}

pub(crate) fn render_rows(rows: &Rows, limit: usize) -> String {
    let mut out = String::new();
    for r in rows.iter().take(limit) {
        let vals: Vec<String> = r.iter().map(slt_value).collect();
        writeln!(out, "    {}", vals.join(" | ")).unwrap();
    }
    if rows.len() > limit {
        writeln!(out, "    … {} more", rows.len() - limit).unwrap();
    }
    out
}

/// Rows of `a` not matched in `b`, as a multiset difference.
pub(crate) fn multiset_minus(a: &Rows, b: &Rows) -> Rows {
    let mut counts: BTreeMap<&Vec<Option<String>>, i64> = BTreeMap::new();
    for r in b {
        *counts.entry(r).or_default() += 1;
    }
    let mut out = Vec::new();
    for r in a {
        let c = counts.entry(r).or_default();
        if *c > 0 {
            *c -= 1;
        } else {
            out.push(r.clone());
        }
    }
    out
}

fn regress_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sqllogictest/slt/mv/regress")
}

fn write_slt(case: &Case, sh: &Shrunk) -> std::io::Result<PathBuf> {
    let dir = regress_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("oracle_{}.slt", case.seed));
    let view = &case.views[sh.mismatch.view];
    let mut s = String::new();
    writeln!(
        s,
        "# Regression case found by the randomized IVM oracle (server/tests/ivm_oracle/),\n\
         # case seed {seed}, shrunk to {n} steps. Reproduce the original case with\n\
         #   FRESHET_ORACLE_SEED={seed} FRESHET_ORACLE_CASES=1 cargo test --workspace --test ivm_oracle -- --nocapture\n\
         # The expected rows are what the view's defining query returns as a batch query.\n\
         # The view was wrong {phase}.",
        seed = case.seed,
        n = sh.steps.len(),
        phase = sh.mismatch.phase
    )
    .unwrap();
    if !sh.reproduced {
        writeln!(
            s,
            "# NOTE: the mismatch did not reproduce on a replay (timing-dependent?); \
             these are the original steps."
        )
        .unwrap();
    }
    writeln!(s).unwrap();
    for sql in &sh.setup {
        writeln!(s, "statement ok\n{sql}\n").unwrap();
    }
    for (i, step) in sh.steps.iter().enumerate() {
        match step {
            Step::Restart { kill } => {
                writeln!(
                    s,
                    "# The oracle restarted the server here ({}). sqllogictest cannot restart a \
                     server, so without it this file may pass.\n",
                    if *kill { "SIGKILL" } else { "SIGTERM" }
                )
                .unwrap();
            }
            Step::Concurrent(sqls) => {
                writeln!(
                    s,
                    "# The oracle sent the next {} statements at the same moment from different \
                     sessions.\n",
                    sqls.len()
                )
                .unwrap();
                for (k, sql) in sqls.iter().enumerate() {
                    let failed = matches!(sh.outcomes.get(i).and_then(|o| o.get(k)), Some(Some(_)));
                    let kind = if failed { "error" } else { "ok" };
                    writeln!(s, "statement {kind}\n{sql}\n").unwrap();
                }
            }
            _ => {
                let failed = matches!(sh.outcomes.get(i).and_then(|o| o.first()), Some(Some(_)));
                let kind = if failed { "error" } else { "ok" };
                writeln!(s, "statement {kind}\n{}\n", case.step_sql(step)).unwrap();
            }
        }
    }
    let letters: String = view.cols.iter().map(|c| c.ty.slt()).collect();
    writeln!(
        s,
        "query {letters} rowsort\nSELECT * FROM {}\n----",
        view.name
    )
    .unwrap();
    for r in &sh.mismatch.expected {
        let vals: Vec<String> = r.iter().map(slt_value).collect();
        writeln!(s, "{}", vals.join(" ")).unwrap();
    }
    // Clean up: views (newest first), then tables.
    for step in sh.steps.iter().rev() {
        if let Step::CreateView(v) = step {
            writeln!(
                s,
                "\nstatement ok\nDROP MATERIALIZED VIEW {}",
                case.views[*v].name
            )
            .unwrap();
        }
    }
    for sql in sh.setup.iter().rev() {
        if let Some(name) = sql
            .strip_prefix("CREATE TABLE ")
            .and_then(|r| r.split_whitespace().next())
        {
            writeln!(s, "\nstatement ok\nDROP TABLE {name}").unwrap();
        }
    }
    std::fs::write(&path, s)?;
    Ok(path)
}

pub(crate) async fn report_mismatch(case: &Case, m: Mismatch, no_shrink: bool) -> String {
    let sh = if no_shrink {
        Shrunk {
            setup: case.setup.clone(),
            steps: case.steps[..=m.step].to_vec(),
            outcomes: case.outcomes[..=m.step].to_vec(),
            mismatch: m.clone(),
            replays: 0,
            reproduced: true,
        }
    } else {
        eprintln!("  shrinking the case (seed {}) …", case.seed);
        shrink(case, &m).await
    };
    let file = match write_slt(case, &sh) {
        Ok(p) => p.display().to_string(),
        Err(e) => format!("(could not write the .slt file: {e})"),
    };
    let view = &case.views[m.view];
    let mut s = String::new();
    writeln!(
        s,
        "IVM oracle MISMATCH (case seed {seed}; reproduce with FRESHET_ORACLE_SEED={seed} \
         FRESHET_ORACLE_CASES=1)\nview {}:\n  {}\nwrong {} — last step (#{} of {}): {}\n\
         expected (batch query), {} rows:\n{}got (SELECT * FROM {}), {} rows:\n{}\
         missing from the view:\n{}unexpected in the view:\n{}",
        view.name,
        view.create_sql(),
        m.phase,
        m.step + 1,
        case.steps.len(),
        case.step_sql(&case.steps[m.step]),
        m.expected.len(),
        render_rows(&m.expected, 40),
        view.name,
        m.got.len(),
        render_rows(&m.got, 40),
        render_rows(&multiset_minus(&m.expected, &m.got), 40),
        render_rows(&multiset_minus(&m.got, &m.expected), 40),
        seed = case.seed,
    )
    .unwrap();
    if sh.reproduced {
        writeln!(
            s,
            "minimal case ({} of {} steps, after {} replays; view wrong {}), written to {file}:\n{}\
             expected:\n{}got:\n{}",
            sh.steps.len(),
            case.steps.len(),
            sh.replays,
            sh.mismatch.phase,
            case.script(&sh.setup, &sh.steps, &sh.outcomes),
            render_rows(&sh.mismatch.expected, 40),
            render_rows(&sh.mismatch.got, 40),
        )
        .unwrap();
    } else {
        writeln!(
            s,
            "the mismatch did NOT reproduce on a replay of the same steps (timing-dependent?); \
             original steps written to {file}:\n{}",
            case.script(&sh.setup, &sh.steps, &sh.outcomes)
        )
        .unwrap();
    }
    s
}
