//! `scale`: ProvisioningHybrid as separate processes on one PostgreSQL
//! catalog — one API process (`serve --catalog`, which only queues) and 1, 2
//! and 4 `worker` processes — provisioning N tenants submitted at once over
//! HTTP with `?wait=true`. Reports tenants/s, p50/p95 latency from submit to
//! the answer that the tenant is Active, the CPU seconds per tenant spent in
//! the workers, the API and PostgreSQL, and a run where one worker is
//! SIGKILLed mid-way (the time until the runs it held finish elsewhere).
//!
//! ```sh
//! cargo build --release -p provisioning-hybrid -p provisioning-benches
//! PROVISIONING_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   target/release/scale --tenants 200 --json
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Scale-out figures of the example binary on PostgreSQL.
#[derive(Parser)]
struct Args {
    /// The PostgreSQL server (a scratch database is made on it per run);
    /// default PROVISIONING_TEST_POSTGRES_URL.
    #[arg(long)]
    postgres: Option<String>,
    /// Tenants per run.
    #[arg(long, default_value_t = 200)]
    tenants: usize,
    /// Worker process counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// Requests each worker drives at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// The plan of every tenant: `premium` (a SQLite file of its own) or
    /// `free` (rows in the region's shared SQLite database).
    #[arg(long, default_value = "premium")]
    plan: String,
    /// Worker processes in the run with one of them SIGKILLed (0 skips it).
    #[arg(long, default_value_t = 2)]
    kill_workers: usize,
    /// The workers' lease (how long a killed worker's runs wait to pass on).
    #[arg(long, default_value = "5")]
    lease_secs: u64,
    /// The example binary (default: next to this one).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Where the data directories go (default: the system's temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

fn main() -> BoxResult<()> {
    let args = Args::parse();
    let server = match args.postgres.clone() {
        Some(url) => url,
        None => std::env::var("PROVISIONING_TEST_POSTGRES_URL")
            .map_err(|_| "set --postgres or PROVISIONING_TEST_POSTGRES_URL")?,
    };
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory")?
            .join("provisioning-hybrid"),
    };
    if !bin.is_file() {
        return Err(format!(
            "{} is missing: cargo build --release -p provisioning-hybrid",
            bin.display()
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut runs = Vec::new();
    for &workers in &args.workers {
        let run = runtime.block_on(measure(&args, &server, &bin, &base, workers, false))?;
        eprintln!("{}", run.line());
        runs.push(run);
    }
    let killed = if args.kill_workers > 0 {
        let run = runtime.block_on(measure(
            &args,
            &server,
            &bin,
            &base,
            args.kill_workers,
            true,
        ))?;
        eprintln!("{}", run.line());
        Some(run)
    } else {
        None
    };
    println!();
    println!(
        "| workers | tenants/s | p50 ms | p95 ms | CPU ms/tenant: workers | API | PostgreSQL | takeover s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for run in runs.iter().chain(killed.iter()) {
        println!("{}", run.row());
    }
    if args.json {
        let all: Vec<_> = runs.iter().chain(killed.iter()).map(Run::json).collect();
        println!(
            "{}",
            json!({ "tenants": args.tenants, "plan": args.plan, "concurrency": args.concurrency, "runs": all })
        );
    }
    Ok(())
}

/// One run's figures.
struct Run {
    workers: usize,
    killed: bool,
    tenants: usize,
    seconds: f64,
    p50_ms: f64,
    p95_ms: f64,
    cpu_workers: f64,
    cpu_api: f64,
    cpu_postgres: f64,
    takeover_s: Option<f64>,
}

impl Run {
    fn per_tenant_ms(&self, cpu: f64) -> f64 {
        cpu * 1000.0 / self.tenants as f64
    }

    fn line(&self) -> String {
        format!(
            "{} worker(s){}: {:.1} tenants/s, p50 {:.0} ms, p95 {:.0} ms",
            self.workers,
            if self.killed { ", one killed" } else { "" },
            self.tenants as f64 / self.seconds,
            self.p50_ms,
            self.p95_ms
        )
    }

    fn row(&self) -> String {
        format!(
            "| {}{} | {:.1} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            self.workers,
            if self.killed { " (one SIGKILLed)" } else { "" },
            self.tenants as f64 / self.seconds,
            self.p50_ms,
            self.p95_ms,
            self.per_tenant_ms(self.cpu_workers),
            self.per_tenant_ms(self.cpu_api),
            self.per_tenant_ms(self.cpu_postgres),
            self.takeover_s
                .map_or_else(|| "".to_owned(), |s| format!("{s:.1}")),
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "workers": self.workers,
            "killed": self.killed,
            "tenants_per_s": self.tenants as f64 / self.seconds,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "cpu_ms_per_tenant": {
                "workers": self.per_tenant_ms(self.cpu_workers),
                "api": self.per_tenant_ms(self.cpu_api),
                "postgres": self.per_tenant_ms(self.cpu_postgres),
            },
            "takeover_s": self.takeover_s,
        })
    }
}

/// A scratch database: dropped at the end of its run (and, should a run
/// fail, when a later run of the same label makes it again).
struct Scratch {
    server: String,
    name: String,
    url: String,
}

impl Scratch {
    async fn new(server: &str, label: &str) -> BoxResult<Scratch> {
        let name = format!("scale_{label}_{}", std::process::id());
        exec(
            server,
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        )
        .await?;
        exec(server, &format!("CREATE DATABASE \"{name}\"")).await?;
        let base = server.split('?').next().unwrap_or(server);
        let root = &base[..base.rfind('/').ok_or("the URL names no database")?];
        Ok(Scratch {
            server: server.to_owned(),
            url: format!("{root}/{name}"),
            name,
        })
    }

    async fn drop_now(&self) -> BoxResult<()> {
        exec(
            &self.server,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        )
        .await
    }
}

async fn exec(url: &str, sql: &str) -> BoxResult<()> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// A child process of the example binary, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &Path, dir: &Path, url: &str, args: &[&str]) -> BoxResult<Proc> {
    // The catalog URL by environment, not argument: out of the process list.
    let child = Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("PROVISIONING_HYBRID_CATALOG", url)
        .env_remove("PROVISIONING_INJECT_FAILURE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Proc(child))
}

/// CPU seconds (user + system) `pid` has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) start after ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on Linux on every architecture it runs on.
    100.0
}

/// CPU seconds of every PostgreSQL process (server and backends).
fn postgres_cpu() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

async fn measure(
    args: &Args,
    server: &str,
    bin: &Path,
    base: &Path,
    workers: usize,
    kill: bool,
) -> BoxResult<Run> {
    let label = format!("w{workers}{}", if kill { "k" } else { "" });
    let db = Scratch::new(server, &label).await?;
    let data = tempdir_in(base, &label)?;
    let url = db.url.as_str();
    let mut api = spawn(
        bin,
        &data,
        url,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--wait-timeout",
            "20m",
            "--request-timeout",
            "30m",
            "--max-connections",
            "4096",
            // Submissions are short catalog writes here (the API queues):
            // the burst of them is not what this run measures.
            "--max-runs",
            "4096",
        ],
    )?;
    let addr = announced(&mut api.0)?;
    let lease = format!("{}s", args.lease_secs);
    let concurrency = args.concurrency.to_string();
    let mut procs = Vec::new();
    for w in 0..workers {
        let name = format!("w{w}");
        procs.push(spawn(
            bin,
            &data,
            url,
            &[
                "worker",
                "--name",
                &name,
                "--concurrency",
                &concurrency,
                "--lease",
                &lease,
            ],
        )?);
    }
    // Workers connect and migrate-check before they claim: let them start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.tenants)
        .build()?;
    let pg_before = postgres_cpu();
    let started = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.tenants {
        let (client, latencies) = (client.clone(), Arc::clone(&latencies));
        let url = format!("http://{addr}/api/v1/tenants?wait=true");
        let body =
            json!({ "tenant_id": format!("t{i:05}"), "plan": args.plan, "region": "eu-west" });
        tasks.spawn(async move {
            let sent = Instant::now();
            let answer: serde_json::Value =
                client.post(&url).json(&body).send().await?.json().await?;
            if answer["status"] != "succeeded" {
                return Err(format!("not succeeded: {answer}").into());
            }
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            latencies.lock().map_err(|_| "poisoned")?.push(ms);
            BoxResult::Ok(())
        });
    }
    let mut takeover = None;
    if kill {
        // Once a third is done, SIGKILL the first worker while it holds runs.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let done = latencies.lock().map_err(|_| "poisoned")?.len();
            if done >= args.tenants / 3 {
                break;
            }
            if Instant::now() > deadline || tasks.is_empty() {
                return Err("a third of the tenants never finished".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Killed while it holds runs, so that they must pass on.
        let held = loop {
            let held = held_by(url, "w0").await?;
            if !held.is_empty() {
                break held;
            }
            if Instant::now() > deadline {
                return Err("worker w0 never held a run to be killed with".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let doomed = procs.remove(0);
        drop(doomed); // kill and reap
        let killed_at = Instant::now();
        let watch = tokio::spawn({
            let url = url.to_owned();
            async move {
                until_finished(&url, &held)
                    .await
                    .map(|()| killed_at.elapsed())
            }
        });
        takeover = Some(watch);
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let takeover_s = match takeover {
        Some(watch) => Some(watch.await??.as_secs_f64()),
        None => None,
    };
    let cpu_postgres = postgres_cpu() - pg_before;
    let cpu_workers: f64 = procs.iter().map(|p| cpu_seconds(p.0.id())).sum();
    let cpu_api = cpu_seconds(api.0.id());
    drop(procs);
    drop(api);
    db.drop_now().await?;
    let _ = std::fs::remove_dir_all(&data);
    let mut sorted = latencies.lock().map_err(|_| "poisoned")?.clone();
    sorted.sort_by(f64::total_cmp);
    let pct =
        |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1];
    Ok(Run {
        workers,
        killed: kill,
        tenants: args.tenants,
        seconds,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        cpu_workers,
        cpu_api,
        cpu_postgres,
        takeover_s,
    })
}

fn tempdir_in(base: &Path, label: &str) -> BoxResult<PathBuf> {
    let dir = base.join(format!("scale-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Reads `listening on http://ADDR` from the server's stdout, then keeps
/// draining it.
fn announced(child: &mut Child) -> BoxResult<String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on http://") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    Ok(rx.recv_timeout(Duration::from_secs(60))?)
}

/// The requests `owner` holds, running.
async fn held_by(url: &str, owner: &str) -> BoxResult<Vec<String>> {
    let mut conn = PgConnection::connect(url).await?;
    let held = sqlx::query_scalar::<_, String>(
        "SELECT request_id::text FROM provisioning.requests \
         WHERE lease_owner = $1 AND status = 'running'",
    )
    .bind(owner)
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    Ok(held)
}

/// Waits until every request in `ids` has finished.
async fn until_finished(url: &str, ids: &[String]) -> BoxResult<()> {
    let mut conn = PgConnection::connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if Instant::now() > deadline {
            return Err("a killed worker's runs never finished".into());
        }
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM provisioning.requests \
             WHERE request_id::text = ANY($1) AND status = 'running'",
        )
        .bind(ids)
        .fetch_one(&mut conn)
        .await?;
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
