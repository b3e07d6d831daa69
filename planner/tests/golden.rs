//! Planner golden tests: every `tests/golden/<case>.sql` is run against an
//! engine on a fresh data directory — every statement but the last must
//! succeed (the setup) — and what the last one answers (its rows, one line
//! each, or `ERROR <SQLSTATE>: <message>`) must equal `<case>.out`.
//!
//! The cases are `EXPLAIN CREATE MATERIALIZED VIEW …` of what each lowering
//! pass does, and the errors the check pass gives. After a deliberate
//! change, `FRESHET_GOLDEN=overwrite cargo test -p freshet-planner --test
//! golden` rewrites the `.out` files; review their diff.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ParamValues;
use freshet_planner::{Engine, EngineOptions, Output, Session, StoreOptions};
use futures::TryStreamExt;

/// What `sql`'s last statement answers, after the others ran.
async fn answer(engine: &Engine, sql: &str) -> Result<String, String> {
    let statements = engine.parse(sql).map_err(|e| format!("parse: {e}"))?;
    let n = statements.len();
    if n == 0 {
        return Err("no statements".into());
    }
    let mut session = Session::new("golden");
    let mut last = String::new();
    for (i, stmt) in statements.into_iter().enumerate() {
        let text = stmt.to_string();
        let result = async {
            let plan = engine.plan(&session, stmt).await?;
            let out = engine
                .execute(&mut session, &plan, &ParamValues::List(vec![]))
                .await?;
            Ok::<_, freshet_planner::PlannerError>(out)
        }
        .await;
        last = match result {
            Ok(Output::Rows { stream, .. }) => {
                let batches: Vec<RecordBatch> = stream
                    .try_collect()
                    .await
                    .map_err(|e| format!("{text}: {e}"))?;
                lines(&batches)
            }
            Ok(Output::Command(tag)) => format!("{}\n", tag.command),
            Ok(_) => "(other output)\n".to_string(),
            Err(e) if i + 1 == n => {
                let s = e.sqlstate();
                format!("ERROR {}: {}\n", s.code, s.message)
            }
            Err(e) => return Err(format!("setup statement failed: {text}: {e}")),
        };
    }
    Ok(last)
}

fn lines(batches: &[RecordBatch]) -> String {
    let mut out = String::new();
    let options = FormatOptions::default().with_null("NULL");
    for b in batches {
        let formatters: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..b.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push_str(&cells.join(" | "));
            out.push('\n');
        }
    }
    out
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    cases.sort();
    cases
}

#[tokio::test]
async fn golden() {
    let overwrite = std::env::var("FRESHET_GOLDEN").is_ok_and(|v| v == "overwrite");
    let cases = cases();
    assert!(cases.len() >= 10, "the golden cases are missing");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_stem().unwrap().to_string_lossy().to_string();
        let dir =
            std::env::temp_dir().join(format!("freshet-golden-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::open(EngineOptions {
            data_dir: dir.clone(),
            store: StoreOptions::default(),
        })
        .unwrap();
        let sql = std::fs::read_to_string(case).unwrap();
        let got = match answer(&engine, &sql).await {
            Ok(got) => got,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        engine.close().unwrap();
        drop(engine);
        let _ = std::fs::remove_dir_all(&dir);
        let expected_path = case.with_extension("out");
        if overwrite {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{name}: got\n{got}\nexpected ({})\n{expected}",
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases differ (FRESHET_GOLDEN=overwrite rewrites them):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
