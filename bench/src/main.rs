//! `freshet-bench`: benchmarks that run the same client code against Freshet
//! and against a local PostgreSQL, and print the figures side by side.
//!
//! See `bench/README.md`.

mod freshet;
mod ivm;
mod pg;
mod sources;
mod util;
mod workload;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use freshet_sqllogictest::harness::Server;

use crate::ivm::{LoadResult, Maintenance, ViewDef, BY_CATEGORY, BY_G};
use crate::util::Latencies;
use crate::workload::{ConnSpec, SystemResult, WorkloadConfig};

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

    /// Rows to load with COPY: into `kv` (point-lookups), `orders`
    /// (ivm-freshness), `facts` (ivm-throughput, where the default is 10000000).
    #[arg(long, global = true, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    rows: u64,

    /// Whether `--rows` was given (otherwise each command has its default).
    #[arg(skip)]
    rows_given: bool,

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
    /// How soon a materialized view (join + group-by) shows a one-row UPDATE;
    /// PostgreSQL: REFRESH MATERIALIZED VIEW time.
    IvmFreshness(FreshnessArgs),
    /// COPY rows/s into a table feeding materialized views, against no views;
    /// PostgreSQL: COPY + REFRESH.
    IvmThroughput(ThroughputArgs),
    /// Kafka JSON records/s (and per server core) through a filter view and
    /// a group-by view; baseline: librdkafka consuming raw.
    KafkaIngest(KafkaIngestArgs),
    /// Produce -> visible latency in a view at a fixed rate (p50/p99).
    KafkaLatency(KafkaLatencyArgs),
    /// The nexmark generator into a count(*) view: events/s; baseline: the
    /// generator alone.
    NexmarkCount(NexmarkCountArgs),
}

#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
struct KafkaIngestArgs {
    /// Records pre-loaded into the topic.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    records: u64,
    /// The topic's partitions.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1024))]
    partitions: i32,
}

#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
struct KafkaLatencyArgs {
    /// Records produced per second.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: u64,
}

#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
struct NexmarkCountArgs {
    /// Nexmark events (of every type; 46 in 50 are bids).
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(50..=10_000_000_000))]
    events: u64,
}

impl BenchCommand {
    /// `--rows` when it is not given.
    fn default_rows(self) -> u64 {
        match self {
            BenchCommand::PointLookups | BenchCommand::IvmFreshness(_) => 1_000_000,
            BenchCommand::IvmThroughput(_) => 10_000_000,
            BenchCommand::KafkaIngest(_)
            | BenchCommand::KafkaLatency(_)
            | BenchCommand::NexmarkCount(_) => 0,
        }
    }
}

#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
struct FreshnessArgs {
    /// Measured iterations (Freshet): every other one sends the UPDATE,
    /// waits, then reads on a second connection; the others pipeline the
    /// UPDATE and the read on one connection (one round trip for both).
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    iterations: u32,

    /// Iterations before the measured ones (checked, not counted). For the
    /// first seconds after the bulk load and the view's build, RocksDB
    /// flushes in the background and keeps a CPU busy; on a VM, round trips
    /// are then faster than at steady state, when idle CPUs must be woken.
    /// The warm-up runs past that, so the measured iterations see the
    /// steady state.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    warmup_iterations: u32,

    /// UPDATE + REFRESH MATERIALIZED VIEW iterations (PostgreSQL).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    refreshes: u32,

    /// The bench client's tokio runtime. The loop sends one statement at a
    /// time and times each round trip. On a single-threaded runtime the
    /// reply goes from the socket straight to the waiting task. On a
    /// multi-threaded one, tokio-postgres' connection task and the caller
    /// can sit on different threads, so every round trip also pays for
    /// waking a thread: client time, not the server's.
    #[arg(long, value_enum, default_value_t = ClientRuntime::CurrentThread)]
    client_runtime: ClientRuntime,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ClientRuntime {
    CurrentThread,
    MultiThread,
}

#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
struct ThroughputArgs {
    /// Rows per COPY statement into `facts` (each statement is one commit).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    rows_per_copy: u64,
}

impl Cli {
    fn from_matches(matches: &ArgMatches) -> Result<Cli, clap::Error> {
        let mut cli = Cli::from_arg_matches(matches)?;
        // Global arguments given after the subcommand are propagated up.
        cli.rows_given = matches.value_source("rows") == Some(ValueSource::CommandLine);
        Ok(cli)
    }

    /// `--rows`, or `command`'s default.
    fn rows_for(&self, command: BenchCommand) -> u64 {
        if self.rows_given {
            self.rows
        } else {
            command.default_rows()
        }
    }
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

fn main() -> ExitCode {
    let cli = Cli::from_matches(&Cli::command().get_matches()).unwrap_or_else(|e| e.exit());
    let command = cli.command.unwrap_or(BenchCommand::PointLookups);
    // Benchmarks of many concurrent clients use every core; the freshness
    // loop chooses (see `FreshnessArgs::client_runtime`).
    let mut builder = match command {
        BenchCommand::IvmFreshness(FreshnessArgs {
            client_runtime: ClientRuntime::CurrentThread,
            ..
        }) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("freshet-bench: error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(command, &cli) => r,
            // Dropping `run` drops the server guards: Freshet is killed and
            // PostgreSQL stopped.
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
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
        BenchCommand::IvmFreshness(args) => ivm_freshness(cli, args).await,
        BenchCommand::IvmThroughput(args) => ivm_throughput(cli, args).await,
        BenchCommand::KafkaIngest(a) => {
            print_header("kafka-ingest");
            let bin = freshet::resolve_bin(cli.freshet_bin.as_deref())?;
            let args = sources::IngestArgs {
                records: a.records,
                partitions: a.partitions,
            };
            sources::kafka_ingest(&bin, &cli.freshet_args, args).await
        }
        BenchCommand::KafkaLatency(a) => {
            print_header("kafka-latency");
            let bin = freshet::resolve_bin(cli.freshet_bin.as_deref())?;
            let args = sources::LatencyArgs {
                rate: a.rate,
                seconds: cli.seconds,
            };
            sources::kafka_latency(&bin, &cli.freshet_args, args).await
        }
        BenchCommand::NexmarkCount(a) => {
            print_header("nexmark-count");
            let bin = freshet::resolve_bin(cli.freshet_bin.as_deref())?;
            let args = sources::NexmarkArgs { events: a.events };
            sources::nexmark_count(&bin, &cli.freshet_args, args).await
        }
    }
}

/// The first lines of a source benchmark's report.
fn print_header(name: &str) {
    println!("freshet-bench {name}");
    println!("command: {}", util::command_line());
    println!(
        "machine: {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

/// The systems to benchmark and their binaries.
struct Targets {
    systems: Vec<System>,
    freshet_bin: Option<PathBuf>,
    pg_bins: Option<pg::PgBins>,
}

impl Targets {
    /// Resolves both servers' binaries before any work is done.
    fn resolve(cli: &Cli) -> Result<Targets> {
        let systems: Vec<System> = match cli.only {
            Some(only) => vec![only],
            None => vec![System::Freshet, System::Postgres],
        };
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
        Ok(Targets {
            systems,
            freshet_bin,
            pg_bins,
        })
    }

    fn freshet_bin(&self) -> &Path {
        self.freshet_bin.as_deref().expect("resolved for Freshet")
    }

    fn pg_bins(&self) -> &pg::PgBins {
        self.pg_bins.as_ref().expect("resolved for PostgreSQL")
    }

    fn print(&self) {
        if let Some(bin) = &self.freshet_bin {
            println!("freshet: {}", bin.display());
        }
        if let Some(bins) = &self.pg_bins {
            println!(
                "postgres: {} (fsync=on, synchronous_commit=on, shared_buffers=256MB)",
                bins.pg_ctl.display()
            );
        }
    }
}

/// Starts a fresh Freshet, runs `f` against it, stops it. A failure carries
/// the end of Freshet's log.
async fn on_freshet<T, F, Fut>(bin: &Path, extra_args: &[String], f: F) -> Result<T>
where
    F: FnOnce(ConnSpec) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    eprintln!("[freshet] starting {} ...", bin.display());
    let (path, args) = (bin.to_path_buf(), extra_args.to_vec());
    let mut server = tokio::task::spawn_blocking(move || Server::try_start(&path, &args))
        .await
        .context("starting Freshet")?
        .map_err(|e| anyhow!("{e}"))?;
    let result = f(ConnSpec::loopback(server.port(), "freshet", "freshet")).await;
    // Let the dropped clients' connections close before the server goes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let result = result.map_err(|e| {
        anyhow!(
            "{e:#}\n--- freshet log (last lines) ---\n{}",
            server.log_tail(30)
        )
    });
    let exited = server.exit_status();
    let result = result?;
    if let Some(status) = exited {
        bail!(
            "freshet exited during the benchmark ({status})\n--- freshet log (last lines) ---\n{}",
            server.log_tail(30)
        );
    }
    server.kill();
    Ok(result)
}

/// Starts a fresh PostgreSQL, runs `f` against it, stops it.
async fn on_postgres<T, F, Fut>(bins: &pg::PgBins, clients: usize, f: F) -> Result<T>
where
    F: FnOnce(ConnSpec) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    eprintln!("[postgres] initdb + start ({}) ...", bins.pg_ctl.display());
    let server = pg::PgServer::start(bins, clients).await?;
    let spec = ConnSpec::loopback(server.port, "postgres", "postgres");
    if let Ok(client) = workload::connect(&spec).await {
        if let Ok(row) = client.query_one("SELECT version()", &[]).await {
            if let Ok(version) = row.try_get::<_, String>(0) {
                eprintln!("[postgres] {version}");
            }
        }
    }
    let result = f(spec).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
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

async fn point_lookups(cli: &Cli) -> Result<bool> {
    let command_line = util::command_line();
    let targets = Targets::resolve(cli)?;

    let cfg = WorkloadConfig {
        rows: cli.rows_for(BenchCommand::PointLookups),
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
    targets.print();
    println!();

    let chunks = workload::copy_chunks(cfg.rows);

    let mut outcomes: Vec<(System, Result<SystemResult>)> = Vec::new();
    for &system in &targets.systems {
        let (cfg, chunks) = (&cfg, &chunks[..]);
        let outcome =
            match system {
                System::Freshet => on_freshet(
                    targets.freshet_bin(),
                    &cli.freshet_args,
                    |spec| async move { workload::run_system("freshet", &spec, cfg, chunks).await },
                )
                .await,
                System::Postgres => {
                    on_postgres(targets.pg_bins(), cfg.clients, |spec| async move {
                        workload::run_system("postgres", &spec, cfg, chunks).await
                    })
                    .await
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
        let r = a / b;
        if r >= 100.0 {
            format!("{r:.0}x")
        } else {
            format!("{r:.2}x")
        }
    } else {
        "n/a".to_string()
    }
}

/// A latency in µs (one decimal), or "-".
fn fmt_lat_us(v: Option<Duration>) -> String {
    fmt_us(v.map(|d| d.as_secs_f64() * 1e6))
}

/// A latency in ms (one decimal), or "-".
fn fmt_lat_ms(v: Option<Duration>) -> String {
    match v {
        Some(d) => format!("{:.1}", d.as_secs_f64() * 1e3),
        None => "-".to_string(),
    }
}

// ---------------------------------------------------------------------------
// ivm-freshness

async fn ivm_freshness(cli: &Cli, args: FreshnessArgs) -> Result<bool> {
    let command_line = util::command_line();
    let targets = Targets::resolve(cli)?;
    let cfg = ivm::FreshnessConfig {
        orders: cli.rows_for(BenchCommand::IvmFreshness(args)),
        iterations: args.iterations,
        warmup_iterations: args.warmup_iterations,
        refreshes: args.refreshes,
    };
    println!("freshet-bench ivm-freshness");
    println!("command: {command_line}");
    println!(
        "customers: {}, orders: {} (COPY, {} rows per statement)",
        ivm::CUSTOMERS,
        cfg.orders,
        ivm::FRESHNESS_ROWS_PER_COPY
    );
    println!("view: {}", ivm::CREATE_PER_CUSTOMER);
    if let Some(r) = args.client_runtime.to_possible_value() {
        println!("client: tokio {} runtime", r.get_name());
    }
    if targets.systems.contains(&System::Freshet) {
        println!(
            "freshet run: {} measured + {} warm-up iterations of `{}` (random id and amount), \
             each followed by `{}`: alternately on a second connection once the UPDATE \
             returned, and pipelined with the UPDATE on its connection",
            cfg.iterations,
            cfg.warmup_iterations,
            ivm::UPDATE_AMOUNT,
            ivm::READ_CUSTOMER
        );
    }
    if targets.systems.contains(&System::Postgres) {
        println!(
            "postgres run: {} iterations of the same UPDATE, then `{}`, then the same read",
            cfg.refreshes,
            ivm::REFRESH_PER_CUSTOMER
        );
    }
    targets.print();
    println!();

    let customers = ivm::customers_copy();
    let orders = ivm::orders_copy(cfg.orders, ivm::FRESHNESS_ROWS_PER_COPY);
    let mut outcomes: Vec<(System, Result<ivm::FreshnessResult>)> = Vec::new();
    for &system in &targets.systems {
        let (cfg, customers, orders) = (&cfg, &customers[..], &orders[..]);
        let outcome = match system {
            System::Freshet => {
                on_freshet(
                    targets.freshet_bin(),
                    &cli.freshet_args,
                    |spec| async move {
                        let m = Maintenance::Incremental;
                        ivm::run_freshness("freshet", &spec, m, cfg, customers, orders).await
                    },
                )
                .await
            }
            System::Postgres => {
                on_postgres(targets.pg_bins(), 2, |spec| async move {
                    let m = Maintenance::Refresh;
                    ivm::run_freshness("postgres", &spec, m, cfg, customers, orders).await
                })
                .await
            }
        };
        if let Err(e) = &outcome {
            eprintln!("[{}] FAILED: {e:#}", system.label());
        }
        outcomes.push((system, outcome));
    }

    print_freshness_report(&command_line, &outcomes);
    Ok(outcomes
        .iter()
        .all(|(_, o)| matches!(o, Ok(r) if r.is_correct())))
}

fn print_freshness_report(command_line: &str, outcomes: &[(System, Result<ivm::FreshnessResult>)]) {
    println!();
    println!(
        "{:<10} {:>14} {:>16} {:>10}",
        "system", "load rows/s", "create view ms", "view rows"
    );
    for (system, outcome) in outcomes {
        match outcome {
            Ok(r) => println!(
                "{:<10} {:>14.0} {:>16} {:>10}",
                system.label(),
                r.load_rows as f64 / r.load_time.as_secs_f64().max(1e-9),
                fmt_lat_ms(Some(r.view_build)),
                r.view_rows
            ),
            Err(_) => println!("{:<10} FAILED (see the error above)", system.label()),
        }
    }

    let find = |s: System| {
        outcomes
            .iter()
            .find(|(sys, _)| *sys == s)
            .and_then(|(_, o)| o.as_ref().ok())
    };
    if let Some(f) = find(System::Freshet) {
        println!();
        println!(
            "freshet: UPDATE one order, then read its customer's per_customer row \
             ({} + {} iterations measured)",
            f.fresh.len(),
            f.pipelined.len()
        );
        println!(
            "{:<34} {:>10} {:>10} {:>10}",
            "", "p50 µs", "p99 µs", "max µs"
        );
        let line = |what: &str, l: &Latencies| {
            println!(
                "  {:<32} {:>10} {:>10} {:>10}",
                what,
                fmt_lat_us(l.percentile(0.50)),
                fmt_lat_us(l.percentile(0.99)),
                fmt_lat_us(l.max())
            )
        };
        line("UPDATE", &f.update);
        line("read", &f.read);
        line("freshness (UPDATE sent → read)", &f.fresh);
        line("pipelined UPDATE + read", &f.pipelined);
        line("no view: UPDATE + read, pipelined", &f.plain);
        println!(
            "  first read after the UPDATE not yet fresh: {} of {}; wrong: {}",
            f.stale_first_reads, f.iterations, f.wrong
        );
    }
    if let Some(p) = find(System::Postgres) {
        println!();
        println!(
            "postgres: UPDATE one order, REFRESH MATERIALIZED VIEW per_customer, read the row \
             ({} iterations)",
            p.fresh.len()
        );
        println!("{:<34} {:>10} {:>10}", "", "p50 ms", "max ms");
        let line = |what: &str, l: &Latencies| {
            println!(
                "  {:<32} {:>10} {:>10}",
                what,
                fmt_lat_ms(l.percentile(0.50)),
                fmt_lat_ms(l.max())
            )
        };
        line("UPDATE", &p.update);
        line("REFRESH", &p.refresh);
        line("read", &p.read);
        line("freshness (UPDATE+REFRESH+read)", &p.fresh);
        println!(
            "  {:<32} {:>10} {:>10}   ({} iterations)",
            "no view, no fsync: UPDATE + read",
            fmt_lat_us(p.plain.percentile(0.50)).trim().to_string() + " µs",
            fmt_lat_us(p.plain.max()).trim().to_string() + " µs",
            p.plain.len()
        );
        println!(
            "  read between UPDATE and REFRESH still old: {} of {} (expected: all); wrong: {}",
            p.stale_first_reads, p.iterations, p.wrong
        );
    }
    if let (Some(f), Some(p)) = (find(System::Freshet), find(System::Postgres)) {
        if let (Some(refresh), Some(fresh)) = (p.refresh.percentile(0.5), f.fresh.percentile(0.5)) {
            println!();
            println!(
                "PostgreSQL REFRESH p50 / Freshet freshness p50: {}",
                fmt_ratio(refresh.as_secs_f64(), fresh.as_secs_f64())
            );
            if let Some(piped) = f.pipelined.percentile(0.5) {
                println!(
                    "PostgreSQL REFRESH p50 / Freshet pipelined UPDATE + read p50: {}",
                    fmt_ratio(refresh.as_secs_f64(), piped.as_secs_f64())
                );
            }
        }
    }
    println!();
    println!("command: {command_line}");
    for (system, outcome) in outcomes {
        match outcome {
            Ok(r) if !r.is_correct() => println!(
                "{}: {} stale first reads, {} wrong — the run FAILED; first problem: {}",
                system.label(),
                r.stale_first_reads,
                r.wrong,
                r.first_problem.as_deref().unwrap_or("-")
            ),
            Err(_) => println!("{}: FAILED", system.label()),
            Ok(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------
// ivm-throughput

/// Freshet's runs, each on a fresh server: no views, each view, both.
const FRESHET_VIEW_SETS: [&[&ViewDef]; 4] =
    [&[], &[&BY_G], &[&BY_CATEGORY], &[&BY_G, &BY_CATEGORY]];

async fn ivm_throughput(cli: &Cli, args: ThroughputArgs) -> Result<bool> {
    let command_line = util::command_line();
    let targets = Targets::resolve(cli)?;
    let rows = cli.rows_for(BenchCommand::IvmThroughput(args));
    println!("freshet-bench ivm-throughput");
    println!("command: {command_line}");
    println!(
        "facts: {rows} rows (COPY, {} rows per statement); dim: {} rows",
        args.rows_per_copy,
        ivm::DIM_ROWS
    );
    for view in [&BY_G, &BY_CATEGORY] {
        println!("view {} ({}): {}", view.name, view.kind, view.create);
    }
    if targets.systems.contains(&System::Freshet) {
        println!(
            "freshet run: a fresh server per view set (none, by_g, by_category, both), \
             the views created before the load"
        );
    }
    if targets.systems.contains(&System::Postgres) {
        println!(
            "postgres run: one load with both views in place, then REFRESH MATERIALIZED VIEW \
             of each"
        );
    }
    targets.print();
    println!();

    eprintln!("generating {rows} rows of COPY data ...");
    let data = ivm::ThroughputData::generate(rows, args.rows_per_copy);

    let mut runs: Vec<(System, &'static [&'static ViewDef], Result<LoadResult>)> = Vec::new();
    for &system in &targets.systems {
        let data = &data;
        match system {
            System::Freshet => {
                for views in FRESHET_VIEW_SETS {
                    let outcome = on_freshet(
                        targets.freshet_bin(),
                        &cli.freshet_args,
                        |spec| async move {
                            let m = Maintenance::Incremental;
                            ivm::run_throughput("freshet", &spec, m, views, data).await
                        },
                    )
                    .await;
                    if let Err(e) = &outcome {
                        eprintln!("[freshet] views {}: FAILED: {e:#}", ivm::view_names(views));
                    }
                    runs.push((system, views, outcome));
                }
            }
            System::Postgres => {
                let views: &'static [&'static ViewDef] = &[&BY_G, &BY_CATEGORY];
                let outcome = on_postgres(targets.pg_bins(), 2, |spec| async move {
                    ivm::run_throughput("postgres", &spec, Maintenance::Refresh, views, data).await
                })
                .await;
                if let Err(e) = &outcome {
                    eprintln!("[postgres] FAILED: {e:#}");
                }
                runs.push((system, views, outcome));
            }
        }
    }

    let rows_table = throughput_rows(&runs);
    print_throughput_report(&command_line, &rows_table, &runs);
    Ok(runs.iter().all(|(_, _, o)| o.is_ok()))
}

/// One line of the throughput report.
#[derive(Debug, PartialEq)]
struct ThroughputLine {
    system: System,
    views: &'static [&'static ViewDef],
    /// None: the run failed.
    figures: Option<ThroughputFigures>,
}

#[derive(Debug, PartialEq)]
struct ThroughputFigures {
    load: Duration,
    refresh: Option<Duration>,
    rows_per_sec: f64,
}

/// The report's lines: each Freshet run as it is; PostgreSQL's single run
/// as one line per view set (the same COPY, plus the REFRESH of those views).
fn throughput_rows(
    runs: &[(System, &'static [&'static ViewDef], Result<LoadResult>)],
) -> Vec<ThroughputLine> {
    let mut lines = Vec::new();
    for (system, views, outcome) in runs {
        let sets: Vec<&'static [&'static ViewDef]> = match system {
            System::Freshet => vec![*views],
            System::Postgres => FRESHET_VIEW_SETS.to_vec(),
        };
        for set in sets {
            let figures = outcome.as_ref().ok().map(|r| ThroughputFigures {
                load: r.load_time,
                refresh: (!set.is_empty() && !r.refresh.is_empty()).then(|| {
                    r.refresh
                        .iter()
                        .filter(|(name, _)| set.iter().any(|v| v.name == *name))
                        .map(|(_, d)| *d)
                        .sum()
                }),
                rows_per_sec: r.rows_per_sec(set),
            });
            lines.push(ThroughputLine {
                system: *system,
                views: set,
                figures,
            });
        }
    }
    lines
}

fn print_throughput_report(
    command_line: &str,
    lines: &[ThroughputLine],
    runs: &[(System, &'static [&'static ViewDef], Result<LoadResult>)],
) {
    let baseline = |system: System| {
        lines
            .iter()
            .find(|l| l.system == system && l.views.is_empty())
            .and_then(|l| l.figures.as_ref())
            .map(|f| f.rows_per_sec)
    };
    println!();
    println!(
        "{:<10} {:<20} {:>10} {:>11} {:>14} {:>12}",
        "system", "views", "COPY s", "REFRESH s", "rows/s", "vs no views"
    );
    for line in lines {
        let views = ivm::view_names(line.views);
        match &line.figures {
            Some(f) => println!(
                "{:<10} {:<20} {:>10.2} {:>11} {:>14.0} {:>12}",
                line.system.label(),
                views,
                f.load.as_secs_f64(),
                f.refresh
                    .map(|d| format!("{:.2}", d.as_secs_f64()))
                    .unwrap_or_else(|| "-".to_string()),
                f.rows_per_sec,
                baseline(line.system)
                    .map(|b| fmt_ratio(f.rows_per_sec, b))
                    .unwrap_or_else(|| "-".to_string())
            ),
            None => println!(
                "{:<10} {:<20} FAILED (see the error above)",
                line.system.label(),
                views
            ),
        }
    }
    println!();
    println!(
        "rows/s: rows ÷ time until the data is loaded and the views are current \
         (freshet: the COPY statements, which maintain the views; postgres: COPY + REFRESH)"
    );

    let pg_lines: Vec<&ThroughputLine> = lines
        .iter()
        .filter(|l| l.system == System::Postgres)
        .collect();
    let freshet_lines: Vec<&ThroughputLine> = lines
        .iter()
        .filter(|l| l.system == System::Freshet)
        .collect();
    if !pg_lines.is_empty() && !freshet_lines.is_empty() {
        println!();
        println!("Freshet/PostgreSQL (rows/s with the views current):");
        for f in &freshet_lines {
            let p = pg_lines.iter().find(|p| p.views == f.views);
            if let (Some(ff), Some(pf)) = (f.figures.as_ref(), p.and_then(|p| p.figures.as_ref())) {
                println!(
                    "  {:<20} {}",
                    ivm::view_names(f.views),
                    fmt_ratio(ff.rows_per_sec, pf.rows_per_sec)
                );
            }
        }
    }
    println!();
    println!("command: {command_line}");
    for (system, views, outcome) in runs {
        if outcome.is_err() {
            println!(
                "{} (views: {}): FAILED",
                system.label(),
                ivm::view_names(views)
            );
        }
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

    fn parse(args: &[&str]) -> Cli {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        Cli::from_matches(&matches).unwrap()
    }

    #[test]
    fn ivm_subcommands() {
        let cli = parse(&["freshet-bench", "ivm-freshness"]);
        let Some(cmd @ BenchCommand::IvmFreshness(args)) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(
            args,
            FreshnessArgs {
                iterations: 4000,
                warmup_iterations: 5000,
                refreshes: 5,
                client_runtime: ClientRuntime::CurrentThread,
            }
        );
        assert_eq!(cli.rows_for(cmd), 1_000_000);

        let cli = parse(&[
            "freshet-bench",
            "ivm-freshness",
            "--iterations",
            "50",
            "--refreshes=2",
            "--warmup-iterations",
            "0",
            "--rows",
            "20000",
            "--client-runtime",
            "multi-thread",
        ]);
        let Some(cmd @ BenchCommand::IvmFreshness(args)) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(
            (args.iterations, args.warmup_iterations, args.refreshes),
            (50, 0, 2)
        );
        assert_eq!(args.client_runtime, ClientRuntime::MultiThread);
        assert!(Cli::try_parse_from([
            "freshet-bench",
            "ivm-freshness",
            "--client-runtime",
            "single"
        ])
        .is_err());
        assert_eq!(cli.rows_for(cmd), 20_000);
        assert!(
            Cli::try_parse_from(["freshet-bench", "ivm-freshness", "--iterations", "0"]).is_err()
        );

        // ivm-throughput defaults to 10M rows unless --rows is given, before
        // or after the subcommand.
        let cli = parse(&["freshet-bench", "ivm-throughput"]);
        let Some(cmd @ BenchCommand::IvmThroughput(args)) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(args.rows_per_copy, 100_000);
        assert_eq!(cli.rows_for(cmd), 10_000_000);
        assert_eq!(cli.rows_for(BenchCommand::PointLookups), 1_000_000);
        for args in [
            &[
                "freshet-bench",
                "ivm-throughput",
                "--rows",
                "5000",
                "--rows-per-copy",
                "1000",
            ][..],
            &[
                "freshet-bench",
                "--rows",
                "5000",
                "ivm-throughput",
                "--rows-per-copy=1000",
            ][..],
        ] {
            let cli = parse(args);
            let Some(cmd @ BenchCommand::IvmThroughput(t)) = cli.command else {
                panic!("{:?}", cli.command)
            };
            assert_eq!((cli.rows_for(cmd), t.rows_per_copy), (5000, 1000));
        }
        // An explicit --rows equal to another command's default still counts.
        let cli = parse(&["freshet-bench", "ivm-throughput", "--rows", "1000000"]);
        assert_eq!(cli.rows_for(cli.command.unwrap()), 1_000_000);
        let cli = parse(&["freshet-bench", "--only", "pg", "ivm-throughput"]);
        assert_eq!(cli.only, Some(System::Postgres));
    }

    #[test]
    fn ratios() {
        assert_eq!(fmt_ratio(3.0, 2.0), "1.50x");
        assert_eq!(fmt_ratio(12345.0, 2.0), "6172x");
        assert_eq!(fmt_ratio(1.0, 0.0), "n/a");
        assert_eq!(fmt_lat_ms(Some(Duration::from_micros(1500))), "1.5");
        assert_eq!(fmt_lat_us(Some(Duration::from_nanos(12_345))), "12.3");
        assert_eq!(fmt_lat_us(None), "-");
    }

    #[test]
    fn throughput_lines() {
        let s = Duration::from_secs;
        let runs = vec![
            (
                System::Freshet,
                FRESHET_VIEW_SETS[0],
                Ok(LoadResult {
                    rows: 100,
                    load_time: s(1),
                    refresh: vec![],
                }),
            ),
            (System::Freshet, FRESHET_VIEW_SETS[1], Err(anyhow!("boom"))),
            (
                System::Postgres,
                FRESHET_VIEW_SETS[3],
                Ok(LoadResult {
                    rows: 100,
                    load_time: s(1),
                    refresh: vec![("by_g", s(1)), ("by_category", s(3))],
                }),
            ),
        ];
        let lines = throughput_rows(&runs);
        assert_eq!(lines.len(), 2 + 4);
        assert_eq!(lines[0].figures.as_ref().unwrap().rows_per_sec, 100.0);
        assert_eq!(lines[0].figures.as_ref().unwrap().refresh, None);
        assert!(lines[1].figures.is_none());
        let pg: Vec<(String, Option<Duration>, f64)> = lines[2..]
            .iter()
            .map(|l| {
                let f = l.figures.as_ref().unwrap();
                (ivm::view_names(l.views), f.refresh, f.rows_per_sec)
            })
            .collect();
        assert_eq!(
            pg,
            [
                ("none".to_string(), None, 100.0),
                ("by_g".to_string(), Some(s(1)), 50.0),
                ("by_category".to_string(), Some(s(3)), 25.0),
                ("by_g + by_category".to_string(), Some(s(4)), 20.0),
            ]
        );
    }
}
