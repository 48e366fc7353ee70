//! Moves on PostgreSQL: dedicated tenants (a schema each, seed plus extra
//! rows) moved from one shard's database to another's through
//! `move_tenant`, against a hand-written mover: the schema made and migrated
//! in the target database, each table `COPY`'d out of the source and into
//! the target in that transaction, the source schema dropped. Two scratch
//! databases per run stand in for two shard servers; everything is dropped
//! at the end of each run.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::StreamExt;
use provisioning_core::{ProvisioningOrchestrator, RequestId, RequestStatus};
use provisioning_sharding::{
    PlacementRules, RendezvousResolver, RuleBasedPolicy, ShardDirectory, ShardStatus,
};
use provisioning_sqlx::{PostgresDedicatedMode, PostgresSchemaManager, PostgresStore};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor};

use crate::moves::held_writes;
use crate::report::{Mode, Run};
use crate::runner::{self, PREFIX, Result, Rounds, check, tenant_id};
use crate::workload::{PG_MIGRATIONS, pg_schema, tenant_tables};

/// The schema prefix of every tenant (one database per side and run).
const SCHEMA_PREFIX: &str = "t_";
const FROM: &str = "eu-west-dedicated-1";
const TO: &str = "eu-west-dedicated-2";

/// Measures both sides at each concurrency, `rounds` times in ABBA order.
pub(crate) async fn run(
    root: &Path,
    url: &str,
    tenants: usize,
    extra: usize,
    concurrencies: &[usize],
    rounds: Rounds,
) -> Result<Mode> {
    let _ = root;
    let admin = PgPoolOptions::new().max_connections(1).connect(url).await?;
    let tag = format!("{:08x}", std::process::id());
    let mut runs = Vec::new();
    let mut held = Vec::new();
    for &concurrency in concurrencies {
        let mut windows = Vec::new();
        let samples = runner::alternate(
            rounds,
            async |round| {
                let run =
                    Scratch::new(&admin, url, &format!("bmf{tag}c{concurrency}r{round}")).await?;
                let outcome = floor_run(&run, tenants, extra, concurrency).await;
                run.drop(&admin).await;
                outcome
            },
            async |round| {
                let run =
                    Scratch::new(&admin, url, &format!("bms{tag}c{concurrency}r{round}")).await?;
                let outcome = sdk_run(&run, tenants, extra, concurrency).await;
                run.drop(&admin).await;
                let (per_sec, mut w) = outcome?;
                windows.append(&mut w);
                Ok(per_sec)
            },
        )
        .await?;
        let run = Run::new(concurrency, samples);
        eprintln!("{}", run.line("moves_postgres"));
        runs.push(run);
        if let Some(figures) = held_writes(concurrency, windows) {
            held.push(figures);
        }
    }
    admin.close().await;
    Ok(Mode {
        tenants,
        runs,
        fleet: None,
        peak_rss_mib: None,
        held_writes: held,
        extra_rows: Some(extra),
    })
}

/// Two scratch databases, the source and the target shard.
struct Scratch {
    names: [String; 2],
    urls: [String; 2],
}

impl Scratch {
    async fn new(admin: &PgPool, url: &str, name: &str) -> Result<Self> {
        let names = [format!("{name}_a"), format!("{name}_b")];
        for db in &names {
            admin
                .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\"")))
                .await?;
            admin
                .execute(AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
                .await?;
        }
        // The server's URL with the scratch database instead of its own.
        let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
        let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let urls = names.clone().map(|db| format!("{root}/{db}{query}"));
        Ok(Scratch { names, urls })
    }

    async fn drop(&self, admin: &PgPool) {
        for db in &self.names {
            let dropped = admin
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
                )))
                .await;
            if let Err(e) = dropped {
                eprintln!("warning: could not drop database {db}: {e}");
            }
        }
    }
}

/// The SDK over the two databases: the catalog in the source's, a schema
/// per tenant on either shard; every tenant created on the source shard
/// with `extra` rows beyond its seed.
async fn setup(
    run: &Scratch,
    tenants: usize,
    extra: usize,
) -> Result<(
    ProvisioningOrchestrator,
    Arc<PostgresStore>,
    Arc<ShardDirectory>,
)> {
    let store = Arc::new(PostgresStore::connect_to_schema(&run.urls[0], "catalog").await?);
    let directory = Arc::new(ShardDirectory::from_toml_str(&format!(
        r#"
        [[shards]]
        id = "{FROM}"
        region = "eu-west"
        pool = "dedicated"
        capacity = 100000
        connection = "{}"
        [[shards]]
        id = "{TO}"
        region = "eu-west"
        pool = "dedicated"
        capacity = 100000
        status = "full"
        connection = "{}"
        "#,
        run.urls[0], run.urls[1]
    ))?);
    let schema = PostgresSchemaManager::builder()
        .shards(directory.connections())
        .dedicated(pg_schema(false))
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .name_prefix(SCHEMA_PREFIX)
        .build()?;
    let plans = RuleBasedPolicy::new(PlacementRules::default())?.with_directory_regions(&directory);
    let orchestrator = ProvisioningOrchestrator::builder()
        .store(store.clone())
        .placement_policy(Arc::new(plans))
        .shard_resolver(Arc::new(RendezvousResolver::new(directory.clone())))
        .schema_manager(Arc::new(schema))
        .storage(Arc::new(crate::moves::NoStorage))
        .build()?;
    let created = orchestrator.clone();
    runner::run(tenants, 4, move |i| {
        let orchestrator = created.clone();
        async move {
            let request = provisioning_core::TenantRequest::new(
                tenant_id(PREFIX, i).parse()?,
                "premium".parse()?,
                "eu-west".parse()?,
            );
            let receipt = orchestrator.create(request).await?;
            check(receipt.status == RequestStatus::Succeeded, || {
                format!("create: {receipt:?}")
            })
        }
    })
    .await?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&run.urls[0])
        .await?;
    for i in 0..tenants {
        let s = format!(
            "\"{SCHEMA_PREFIX}{}\"",
            tenant_id(PREFIX, i).replace('-', "_")
        );
        pool.execute(AssertSqlSafe(format!(
            "INSERT INTO {s}.projects (name, slug) VALUES ('Bench', 'bench');
             INSERT INTO {s}.tasks (project_id, title)
                 SELECT p.id, 'task ' || n FROM {s}.projects p, generate_series(1, {half}) n;
             INSERT INTO {s}.comments (task_id, body) SELECT id, 'a comment on ' || title FROM {s}.tasks;",
            half = extra / 2
        )))
        .await?;
    }
    pool.close().await;
    directory.set_status(&TO.parse()?, ShardStatus::Active)?;
    Ok((orchestrator, store, directory))
}

async fn sdk_run(
    run: &Scratch,
    tenants: usize,
    extra: usize,
    concurrency: usize,
) -> Result<(f64, Vec<f64>)> {
    let (orchestrator, store, _directory) = setup(run, tenants, extra).await?;
    runner::settle_disk();
    let moving = orchestrator.clone();
    let elapsed = runner::run(tenants, concurrency, move |i| {
        let orchestrator = moving.clone();
        async move {
            let receipt = orchestrator
                .move_tenant(
                    &tenant_id(PREFIX, i).parse()?,
                    TO.parse()?,
                    RequestId::new(),
                )
                .await?;
            check(receipt.status == RequestStatus::Succeeded, || {
                format!("move: {receipt:?}")
            })
        }
    })
    .await?;
    let rows: Vec<String> = sqlx::query_scalar("SELECT record::text FROM catalog.journal")
        .fetch_all(store.pool())
        .await?;
    crate::sdk::print_steps(async { crate::sdk::step_profile(rows.clone()) }).await?;
    let windows = crate::sdk::held_write_windows_of(rows)?;
    store.pool().close().await;
    verify("SDK", run, tenants, extra).await?;
    Ok((runner::per_second(tenants, elapsed), windows))
}

async fn floor_run(run: &Scratch, tenants: usize, extra: usize, concurrency: usize) -> Result<f64> {
    let (_, store, _) = setup(run, tenants, extra).await?;
    store.pool().close().await;
    let pool = async |url: &str| -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(crate::floor::postgres::PG_POOL_SIZE)
            .test_before_acquire(false)
            .connect_with(PgConnectOptions::from_str(url)?)
            .await?)
    };
    let (from, to) = (pool(&run.urls[0]).await?, pool(&run.urls[1]).await?);
    let mover = Arc::new(Mover { from, to });
    runner::settle_disk();
    let moving = Arc::clone(&mover);
    let elapsed = runner::run(tenants, concurrency, move |i| {
        let mover = Arc::clone(&moving);
        async move { mover.move_one(&tenant_id(PREFIX, i)).await }
    })
    .await?;
    mover.from.close().await;
    mover.to.close().await;
    verify("floor", run, tenants, extra).await?;
    Ok(runner::per_second(tenants, elapsed))
}

/// The hand-written mover.
struct Mover {
    from: PgPool,
    to: PgPool,
}

impl Mover {
    async fn move_one(&self, tenant: &str) -> Result<()> {
        let schema = format!("\"{SCHEMA_PREFIX}{}\"", tenant.replace('-', "_"));
        let mut to = self.to.begin().await?;
        to.execute(AssertSqlSafe(format!(
            "CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}"
        )))
        .await?;
        for migration in PG_MIGRATIONS.iter() {
            to.execute(sqlx::raw_sql(migration.sql.clone())).await?;
        }
        let mut from = self.from.acquire().await?;
        for table in tenant_tables() {
            let mut sink = to
                .copy_in_raw(&format!("COPY {schema}.{table} FROM STDIN"))
                .await?;
            let mut chunks = from
                .copy_out_raw(&format!("COPY {schema}.{table} TO STDOUT"))
                .await?;
            // Rows gathered into large writes, as any careful mover would.
            let mut batch = Vec::with_capacity(64 * 1024);
            while let Some(chunk) = chunks.next().await {
                batch.extend_from_slice(&chunk?);
                if batch.len() >= 64 * 1024 {
                    sink.send(std::mem::take(&mut batch)).await?;
                }
            }
            drop(chunks);
            if !batch.is_empty() {
                sink.send(batch).await?;
            }
            sink.finish().await?;
        }
        to.commit().await?;
        from.execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .await?;
        Ok(())
    }
}

/// Every tenant's schema is on the target with its rows, none on the source.
async fn verify(side: &str, run: &Scratch, tenants: usize, extra: usize) -> Result<()> {
    let count = |url: String, sql: String| async move {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        Result::<i64>::Ok(n)
    };
    let on_source = count(
        run.urls[0].clone(),
        format!("SELECT COUNT(*) FROM pg_namespace WHERE starts_with(nspname, '{SCHEMA_PREFIX}')"),
    )
    .await?;
    check(on_source == 0, || {
        format!("moves_postgres {side}: {on_source} schemas left on the source")
    })?;
    let tasks: Vec<String> = (0..tenants)
        .map(|i| {
            format!(
                "(SELECT COUNT(*) FROM \"{SCHEMA_PREFIX}{}\".tasks)",
                tenant_id(PREFIX, i).replace('-', "_")
            )
        })
        .collect();
    let total = count(run.urls[1].clone(), format!("SELECT {}", tasks.join(" + "))).await?;
    let expected = i64::try_from(tenants * (extra / 2))?;
    check(total == expected, || {
        format!("moves_postgres {side}: {total} tasks on the target, {expected} expected")
    })
}
