//! `freshet-bench`: benchmarks that run the same client code against Freshet
//! and against a local PostgreSQL, and print the figures side by side.
//!
//! See `bench/README.md`.

mod freshet;
mod pg;
mod util;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};

use crate::workload::{SystemResult, WorkloadConfig};

#[derive(Parser, Debug)]
#[command(
    name = "freshet-bench",
    version,
    about = "Benchmarks Freshet against PostgreSQL with identical client code",
    after_help = "Example: cargo build --release --workspace --bins && \
                  target/release/freshet-bench point-lookups"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<BenchCommand>,

    /// Rows to load into `kv` with COPY.
    #[arg(long, global = true, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    rows: u64,

    /// Concurrent lookup connections.
    #[arg(long, global = true, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    clients: u32,

    /// Measured duration of the lookup phase, in seconds.
    #[arg(long, global = true, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,

    /// Warm-up before the measured lookups, in seconds (not counted).
    #[arg(long, global = true, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    warmup_seconds: u64,

    /// The `freshet` server binary [default: `freshet` next to this executable].
    #[arg(long, global = true, value_name = "PATH")]
    freshet_bin: Option<PathBuf>,

    /// Extra argument for `freshet` (repeatable), e.g. `--freshet-arg=--some-flag`.
    #[arg(
        long = "freshet-arg",
        global = true,
        value_name = "ARG",
        allow_hyphen_values = true
    )]
    freshet_args: Vec<String>,

    /// Directory holding PostgreSQL's `initdb` and `pg_ctl`
    /// [default: highest /usr/lib/postgresql/*/bin, else PATH].
    #[arg(long, global = true, value_name = "DIR")]
    pg_bin_dir: Option<PathBuf>,

    /// Benchmark only one system.
    #[arg(long, global = true, value_enum, value_name = "SYSTEM")]
    only: Option<System>,
}

#[derive(Subcommand, Debug, Clone, Copy)]
enum BenchCommand {
    /// COPY-load `kv`, then concurrent prepared primary-key lookups (the default).
    PointLookups,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Freshet,
    #[value(alias = "postgresql", alias = "pg")]
    Postgres,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Freshet => "freshet",
            System::Postgres => "postgres",
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(BenchCommand::PointLookups);
    let outcome = tokio::select! {
        r = run(command, &cli) => r,
        // Dropping `run` drops the server guards: Freshet is killed and
        // PostgreSQL stopped.
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("freshet-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(true): all good; Ok(false): some system failed or returned wrong results.
async fn run(command: BenchCommand, cli: &Cli) -> Result<bool> {
    match command {
        BenchCommand::PointLookups => point_lookups(cli).await,
    }
}

async fn point_lookups(cli: &Cli) -> Result<bool> {
    let command_line = util::command_line();
    let systems: Vec<System> = match cli.only {
        Some(only) => vec![only],
        None => vec![System::Freshet, System::Postgres],
    };
    // Resolve both servers' binaries before doing any work.
    let freshet_bin = if systems.contains(&System::Freshet) {
        Some(freshet::resolve_bin(cli.freshet_bin.as_deref())?)
    } else {
        None
    };
    let pg_bins = if systems.contains(&System::Postgres) {
        Some(pg::find_bins(cli.pg_bin_dir.as_deref())?)
    } else {
        None
    };

    let cfg = WorkloadConfig {
        rows: cli.rows,
        clients: cli.clients as usize,
        warmup: Duration::from_secs(cli.warmup_seconds),
        measure: Duration::from_secs(cli.seconds),
    };
    println!("freshet-bench point-lookups");
    println!("command: {command_line}");
    println!(
        "rows: {}, clients: {}, warm-up: {} s, measured: {} s",
        cfg.rows, cfg.clients, cli.warmup_seconds, cli.seconds
    );
    if let Some(bin) = &freshet_bin {
        println!("freshet: {}", bin.display());
    }
    if let Some(bins) = &pg_bins {
        println!(
            "postgres: {} (fsync=on, synchronous_commit=on, shared_buffers=256MB)",
            bins.pg_ctl.display()
        );
    }
    println!();

    let chunks = workload::copy_chunks(cfg.rows);

    let mut outcomes: Vec<(System, Result<SystemResult>)> = Vec::new();
    for system in systems {
        let outcome = match system {
            System::Freshet => {
                let bin = freshet_bin.as_deref().expect("resolved above");
                bench_freshet(bin, &cli.freshet_args, &cfg, &chunks).await
            }
            System::Postgres => {
                let bins = pg_bins.as_ref().expect("resolved above");
                bench_postgres(bins, &cfg, &chunks).await
            }
        };
        if let Err(e) = &outcome {
            eprintln!("[{}] FAILED: {e:#}", system.label());
        }
        outcomes.push((system, outcome));
    }

    print_report(&command_line, &outcomes);
    Ok(outcomes
        .iter()
        .all(|(_, o)| matches!(o, Ok(r) if r.is_correct())))
}

async fn bench_freshet(
    bin: &std::path::Path,
    extra_args: &[String],
    cfg: &WorkloadConfig,
    chunks: &[Bytes],
) -> Result<SystemResult> {
    eprintln!("[freshet] starting {} ...", bin.display());
    let server = freshet::FreshetServer::start(bin, extra_args).await?;
    let result = workload::run_system("freshet", &server.conn_spec(), cfg, chunks).await;
    let result = result.map_err(|e| {
        anyhow!(
            "{e:#}\n--- freshet log (last lines) ---\n{}",
            server.log_tail(30)
        )
    });
    let stopped = server.stop().await;
    let result = result?;
    stopped?;
    Ok(result)
}

async fn bench_postgres(
    bins: &pg::PgBins,
    cfg: &WorkloadConfig,
    chunks: &[Bytes],
) -> Result<SystemResult> {
    eprintln!("[postgres] initdb + start ({}) ...", bins.pg_ctl.display());
    let server = pg::PgServer::start(bins, cfg.clients).await?;
    let spec = workload::ConnSpec::loopback(server.port, "postgres", "postgres");
    if let Ok(client) = workload::connect(&spec).await {
        if let Ok(row) = client.query_one("SELECT version()", &[]).await {
            if let Ok(version) = row.try_get::<_, String>(0) {
                eprintln!("[postgres] {version}");
            }
        }
    }
    let result = workload::run_system("postgres", &spec, cfg, chunks).await;
    let result = result.map_err(|e| {
        anyhow!(
            "{e:#}\n--- postgres log (last lines) ---\n{}",
            server.log_tail(30)
        )
    });
    let stopped = server.stop().await;
    let result = result?;
    stopped?;
    Ok(result)
}

fn print_report(command_line: &str, outcomes: &[(System, Result<SystemResult>)]) {
    println!();
    println!(
        "{:<10} {:>14} {:>12} {:>10} {:>10} {:>8} {:>10}",
        "system", "load rows/s", "lookup QPS", "p50 µs", "p99 µs", "errors", "wrong"
    );
    for (system, outcome) in outcomes {
        match outcome {
            Ok(r) => {
                let l = &r.lookups;
                println!(
                    "{:<10} {:>14.0} {:>12.0} {:>10} {:>10} {:>8} {:>10}",
                    system.label(),
                    r.load_rows_per_sec(),
                    l.qps(),
                    fmt_us(l.percentile_us(0.50)),
                    fmt_us(l.percentile_us(0.99)),
                    l.errors,
                    l.mismatches
                );
            }
            Err(_) => println!("{:<10} FAILED (see the error above)", system.label()),
        }
    }

    let find = |s: System| {
        outcomes
            .iter()
            .find(|(sys, _)| *sys == s)
            .and_then(|(_, o)| o.as_ref().ok())
    };
    if let (Some(f), Some(p)) = (find(System::Freshet), find(System::Postgres)) {
        println!();
        println!("Freshet/PostgreSQL:");
        println!(
            "  load rows/s  {}",
            fmt_ratio(f.load_rows_per_sec(), p.load_rows_per_sec())
        );
        println!(
            "  lookup QPS   {}",
            fmt_ratio(f.lookups.qps(), p.lookups.qps())
        );
    }
    println!();
    println!("command: {command_line}");
    for (system, outcome) in outcomes {
        match outcome {
            Ok(r) if !r.is_correct() => println!(
                "{}: {} errors, {} wrong results — the run FAILED",
                system.label(),
                r.lookups.errors,
                r.lookups.mismatches
            ),
            Err(_) => println!("{}: FAILED", system.label()),
            Ok(_) => {}
        }
    }
}

fn fmt_us(v: Option<f64>) -> String {
    match v {
        Some(us) => format!("{us:.1}"),
        None => "-".to_string(),
    }
}

fn fmt_ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_subcommand() {
        let cli = Cli::try_parse_from(["freshet-bench"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            (cli.rows, cli.clients, cli.seconds, cli.warmup_seconds),
            (1_000_000, 8, 20, 2)
        );
        let cli = Cli::try_parse_from([
            "freshet-bench",
            "point-lookups",
            "--rows",
            "1000",
            "--only",
            "postgres",
            "--freshet-arg=--x",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(BenchCommand::PointLookups)));
        assert_eq!(cli.rows, 1000);
        assert_eq!(cli.only, Some(System::Postgres));
        assert_eq!(cli.freshet_args, vec!["--x".to_string()]);
        let cli =
            Cli::try_parse_from(["freshet-bench", "--clients", "2", "point-lookups"]).unwrap();
        assert_eq!(cli.clients, 2);
        assert!(Cli::try_parse_from(["freshet-bench", "--clients", "0"]).is_err());
    }
}
