use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;

use crate::runner::{
    allowed_dml_error, check_view, server_args, Case, Conn, Mismatch, Outcome, Step,
};
use crate::{SHRINK_MAX_REPLAYS, SHRINK_MAX_TIME};

// ---------------------------------------------------------------------------
// Replaying and shrinking a mismatch
// ---------------------------------------------------------------------------

struct Replay {
    mismatch: Option<Mismatch>,
    outcomes: Vec<Outcome>,
}

/// Run `steps` on a fresh server, checking only view `target`; stops at the
/// first mismatch of that view. Anything unexpected (a view that cannot be
/// created, a statement failing with another error) means "did not
/// reproduce".
async fn replay(case: &Case, setup: &[String], steps: &[Step], target: usize) -> Replay {
    // A replay that panics (say, a server that does not restart) did not
    // reproduce the mismatch.
    AssertUnwindSafe(replay_inner(case, setup, steps, target))
        .catch_unwind()
        .await
        .unwrap_or(Replay {
            mismatch: None,
            outcomes: Vec::new(),
        })
}

async fn replay_inner(case: &Case, setup: &[String], steps: &[Step], target: usize) -> Replay {
    let mut r = Replay {
        mismatch: None,
        outcomes: Vec::new(),
    };
    let mut conn = Conn::start(server_args(case.seed)).await;
    for s in setup {
        if conn.exec(s).await.is_err() {
            return r;
        }
    }
    let mut created = false;
    let view = &case.views[target];
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Sql(sql) => match conn.exec(sql).await {
                Ok(()) => r.outcomes.push(vec![None]),
                Err(e) if allowed_dml_error(&e) => r.outcomes.push(vec![Some(e.to_string())]),
                Err(_) => return r,
            },
            Step::Concurrent(sqls) => {
                let mut outcome = Vec::new();
                for res in conn.exec_concurrently(sqls).await {
                    match res {
                        Ok(()) => outcome.push(None),
                        Err(e) if allowed_dml_error(&e) => outcome.push(Some(e.to_string())),
                        Err(_) => return r,
                    }
                }
                r.outcomes.push(outcome);
            }
            Step::CreateView(v) => {
                if conn.exec(&case.views[*v].create_sql()).await.is_err() {
                    return r;
                }
                created |= *v == target;
                r.outcomes.push(vec![None]);
            }
            Step::Restart { kill } => {
                r.outcomes.push(vec![None]);
                let before = if created {
                    match conn.rows(&format!("SELECT * FROM {}", view.name)).await {
                        Ok(rows) => Some(rows),
                        Err(_) => return r,
                    }
                } else {
                    None
                };
                if conn.restart(*kill).await.is_err() {
                    return r;
                }
                if let Some(before) = before {
                    let Ok(after) = conn.rows(&format!("SELECT * FROM {}", view.name)).await else {
                        return r;
                    };
                    if after != before {
                        let how = if *kill { "SIGKILL" } else { "SIGTERM" };
                        r.mismatch = Some(Mismatch {
                            view: target,
                            step: i,
                            phase: format!(
                                "after the restart ({how}); expected = the view's rows before \
                                 the restart"
                            ),
                            expected: before,
                            got: after,
                        });
                        return r;
                    }
                }
            }
        }
        if created {
            match check_view(&conn, view).await {
                Ok(None) => {}
                Ok(Some((expected, got))) => {
                    r.mismatch = Some(Mismatch {
                        view: target,
                        step: i,
                        phase: "after the statement".into(),
                        expected,
                        got,
                    });
                    return r;
                }
                Err(_) => return r,
            }
        }
    }
    r
}

pub(crate) struct Shrunk {
    pub(crate) setup: Vec<String>,
    pub(crate) steps: Vec<Step>,
    pub(crate) mismatch: Mismatch,
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) replays: usize,
    pub(crate) reproduced: bool,
}

pub(crate) async fn shrink(case: &Case, m: &Mismatch) -> Shrunk {
    let target = m.view;
    let mut setup = case.setup.clone();
    let mut steps: Vec<Step> = case.steps[..=m.step].to_vec();
    let first = replay(case, &setup, &steps, target).await;
    let mut replays = 1;
    let Some(mut best) = first.mismatch else {
        return Shrunk {
            setup,
            steps,
            mismatch: m.clone(),
            outcomes: case.outcomes[..=m.step].to_vec(),
            replays,
            reproduced: false,
        };
    };
    let mut outcomes = first.outcomes;
    steps.truncate(best.step + 1);
    let deadline = Instant::now() + SHRINK_MAX_TIME;
    let mut chunk = (steps.len() / 2).max(1);
    'outer: loop {
        let mut i = 0;
        while i < steps.len() {
            if replays >= SHRINK_MAX_REPLAYS || Instant::now() > deadline {
                break 'outer;
            }
            let end = (i + chunk).min(steps.len());
            if steps[i..end]
                .iter()
                .any(|s| matches!(s, Step::CreateView(v) if *v == target))
            {
                i = end;
                continue;
            }
            let mut cand = steps[..i].to_vec();
            cand.extend_from_slice(&steps[end..]);
            let r = replay(case, &setup, &cand, target).await;
            replays += 1;
            match r.mismatch {
                Some(mm) => {
                    cand.truncate(mm.step + 1);
                    steps = cand;
                    best = mm;
                    outcomes = r.outcomes;
                }
                None => i = end,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    // Tables nothing refers to any more.
    let mut k = 0;
    while k < setup.len() && replays < SHRINK_MAX_REPLAYS && Instant::now() <= deadline {
        let mut cand = setup.clone();
        cand.remove(k);
        let r = replay(case, &cand, &steps, target).await;
        replays += 1;
        match r.mismatch {
            Some(mm) if mm.step + 1 == steps.len() => {
                setup = cand;
                best = mm;
                outcomes = r.outcomes;
            }
            _ => k += 1,
        }
    }
    outcomes.truncate(steps.len());
    Shrunk {
        setup,
        steps,
        mismatch: best,
        outcomes,
        replays,
        reproduced: true,
    }
}
