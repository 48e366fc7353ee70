//! PostgreSQL schema-per-tenant mode: tenants provisioned through the
//! orchestrator with the catalog on the same server, against the floor's one
//! transaction per schema; then the fleet release over every schema, by
//! the SDK's durable roll-out and by hand. Every schema this mode makes carries a name
//! unique to the process, and all of them are dropped at the end, also when a
//! run fails.

use std::path::Path;
use std::time::Instant;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::floor::postgres::{PgFloor, SchemaCounts, drop_schemas, schema_counts};
use crate::report::{Fleet, Mode, Run};
use crate::runner::{self, PREFIX, Result, Rounds, check, tenant_id};
use crate::sdk::{PgSdk, print_steps};

/// Names unique to this process: `tag` is fixed-width, so no run's names are
/// a prefix of another's.
struct Names {
    tag: String,
}

impl Names {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Names {
            tag: format!("{:08x}", std::process::id() ^ nanos.rotate_left(16)),
        }
    }

    /// The tenant schema prefix of the floor (`f`) or the SDK (`s`) in one
    /// round at one concurrency.
    fn tenants(&self, side: char, concurrency: usize, round: usize) -> String {
        format!("b{side}{}c{concurrency}r{round}_", self.tag)
    }

    /// The SDK catalog's schema in one round at one concurrency.
    fn catalog(&self, concurrency: usize, round: usize) -> String {
        format!("bench_catalog_{}_c{concurrency}r{round}", self.tag)
    }

    /// Every schema prefix this process uses.
    fn all(&self) -> [String; 3] {
        [
            format!("bf{}", self.tag),
            format!("bs{}", self.tag),
            format!("bench_catalog_{}", self.tag),
        ]
    }
}

/// Measures floor then SDK at each concurrency, then the fleet release over
/// the last run's schemas at `fleet_concurrency`; drops everything it made.
pub(crate) async fn run(
    root: &Path,
    url: &str,
    tenants: usize,
    concurrencies: &[usize],
    fleet_concurrency: usize,
    rounds: Rounds,
) -> Result<Mode> {
    let names = Names::new();
    let admin = PgPoolOptions::new().max_connections(1).connect(url).await?;
    let plan = Plan {
        root,
        url,
        names: &names,
        admin: &admin,
        tenants,
        rounds,
    };
    let outcome = plan.measure(concurrencies, fleet_concurrency).await;
    let mut dropped = 0;
    for prefix in names.all() {
        dropped += drop_schemas(&admin, &prefix).await?;
    }
    vacuum_catalogs(&admin).await;
    admin.close().await;
    eprintln!("postgres: dropped the {dropped} schemas this run made");
    outcome
}

/// What every run of the mode shares.
struct Plan<'a> {
    root: &'a Path,
    url: &'a str,
    names: &'a Names,
    /// A connection for checks and clean-up, apart from both sides' pools.
    admin: &'a PgPool,
    tenants: usize,
    rounds: Rounds,
}

impl Plan<'_> {
    async fn measure(&self, concurrencies: &[usize], fleet_concurrency: usize) -> Result<Mode> {
        let mut runs = Vec::new();
        // The last round's sides, kept for the fleet release; the ones they
        // replace are closed.
        let mut floor_kept: Option<PgFloor> = None;
        let mut sdk_kept: Option<(PgSdk, String)> = None;
        for &concurrency in concurrencies {
            let samples = runner::alternate(
                self.rounds,
                async |round| {
                    let (floor, tps) = self.floor_run(concurrency, round).await?;
                    if let Some(old) = floor_kept.replace(floor) {
                        old.pool().close().await;
                    }
                    Ok(tps)
                },
                async |round| {
                    let (sdk, prefix, tps) = self.sdk_run(concurrency, round).await?;
                    if let Some((old, _)) = sdk_kept.replace((sdk, prefix)) {
                        old.drop_catalog().await?;
                    }
                    Ok(tps)
                },
            )
            .await?;
            let run = Run::new(concurrency, samples);
            eprintln!("{}", run.line("postgres_schema"));
            runs.push(run);
        }
        let last = (floor_kept, sdk_kept);
        let fleet = self.fleet(&last, fleet_concurrency).await;
        close(last).await?;
        Ok(Mode {
            tenants: self.tenants,
            runs,
            fleet: fleet?,
            peak_rss_mib: None,
            held_writes: Vec::new(),
            extra_rows: None,
        })
    }

    async fn floor_run(&self, concurrency: usize, round: usize) -> Result<(PgFloor, f64)> {
        let storage = runner::fresh_dir(self.root, &format!("postgres-floor-c{concurrency}"))?;
        let prefix = self.names.tenants('f', concurrency, round);
        let floor = PgFloor::open(self.url, &prefix, &storage).await?;
        runner::settle_disk();
        let elapsed =
            runner::provision(&floor, self.tenants, concurrency, async |floor, tenant| {
                floor.create(&tenant).await
            })
            .await?;
        let counts = schema_counts(self.admin, floor.prefix()).await?;
        verify("floor", counts, self.tenants, false)?;
        runner::remove_dir(&storage);
        Ok((floor, runner::per_second(self.tenants, elapsed)))
    }

    async fn sdk_run(&self, concurrency: usize, round: usize) -> Result<(PgSdk, String, f64)> {
        let storage = runner::fresh_dir(self.root, &format!("postgres-sdk-c{concurrency}"))?;
        let prefix = self.names.tenants('s', concurrency, round);
        let catalog = self.names.catalog(concurrency, round);
        let sdk = PgSdk::open(self.url, &catalog, &prefix, &storage).await?;
        runner::settle_disk();
        let elapsed = runner::provision(&sdk, self.tenants, concurrency, async |sdk, tenant| {
            sdk.create(&tenant).await
        })
        .await?;
        print_steps(sdk.step_profile()).await?;
        let active = sdk.active_tenants().await?;
        let tenants = self.tenants;
        check(active == tenants, || {
            format!("postgres SDK: {active} of {tenants} tenants active in the catalog")
        })?;
        verify(
            "SDK",
            schema_counts(self.admin, &prefix).await?,
            tenants,
            false,
        )?;
        runner::remove_dir(&storage);
        Ok((sdk, prefix, runner::per_second(tenants, elapsed)))
    }

    /// The fleet release over every schema of the last run: floor first, then
    /// the SDK's durable roll-out (`roll_out`) over the catalog's tenants.
    async fn fleet(
        &self,
        last: &(Option<PgFloor>, Option<(PgSdk, String)>),
        concurrency: usize,
    ) -> Result<Option<Fleet>> {
        let tenants = self.tenants;
        let floor_seconds = match &last.0 {
            Some(floor) => {
                runner::settle_disk();
                let elapsed = {
                    let floor = floor.clone();
                    runner::run(tenants, concurrency, move |i| {
                        let floor = floor.clone();
                        async move { floor.upgrade(&tenant_id(PREFIX, i)).await }
                    })
                    .await?
                };
                let counts = schema_counts(self.admin, floor.prefix()).await?;
                verify("floor fleet", counts, tenants, true)?;
                elapsed.as_secs_f64()
            }
            None => 0.0,
        };
        let (sdk_seconds, drift_seconds) = match &last.1 {
            Some((sdk, prefix)) => {
                let rolled = self.sdk_fleet(sdk, prefix, concurrency).await?;
                let start = Instant::now();
                let drift = sdk.drift(self.url, prefix, concurrency).await?;
                let seconds = start.elapsed().as_secs_f64();
                check(drift.is_clean() && drift.units.len() == tenants, || {
                    format!(
                        "postgres SDK drift after the fleet: {} of {} schemas drifted",
                        drift.drifted().count(),
                        drift.units.len()
                    )
                })?;
                (rolled, seconds)
            }
            None => (0.0, 0.0),
        };
        if last.0.is_none() && last.1.is_none() {
            return Ok(None);
        }
        eprintln!(
            "postgres_schema fleet c={concurrency}: floor {floor_seconds:.2} s, SDK {sdk_seconds:.2} s, drift check {drift_seconds:.2} s"
        );
        Ok(Some(Fleet {
            tenants,
            concurrency,
            sdk_seconds,
            floor_seconds,
            ratio: floor_seconds / sdk_seconds.max(f64::MIN_POSITIVE),
            drift_seconds,
        }))
    }

    async fn sdk_fleet(&self, sdk: &PgSdk, prefix: &str, concurrency: usize) -> Result<f64> {
        let tenants = self.tenants;
        runner::settle_disk();
        let start = Instant::now();
        let report = sdk.roll_out(self.url, prefix, concurrency).await?;
        let elapsed = start.elapsed();
        let applied: usize = report.settled.iter().map(|u| u.applied.len()).sum();
        check(
            report.counts.migrated == tenants
                && report.counts.failed == 0
                && applied == 2 * tenants,
            || {
                format!(
                    "postgres SDK fleet: {:?}, {applied} migrations applied",
                    report.counts
                )
            },
        )?;
        verify(
            "SDK fleet",
            schema_counts(self.admin, prefix).await?,
            tenants,
            true,
        )?;
        Ok(elapsed.as_secs_f64())
    }
}

/// Closes a run's pools and drops the SDK's catalog.
async fn close(run: (Option<PgFloor>, Option<(PgSdk, String)>)) -> Result<()> {
    if let Some(floor) = run.0 {
        floor.pool().close().await;
    }
    if let Some((sdk, _)) = run.1 {
        sdk.drop_catalog().await?;
    }
    Ok(())
}

/// Every tenant has its schema with its seed (and, after the fleet release,
/// the new columns).
fn verify(side: &str, counts: SchemaCounts, tenants: usize, upgraded: bool) -> Result<()> {
    let want = SchemaCounts {
        schemas: tenants,
        seeded: tenants,
        upgraded: if upgraded { tenants } else { 0 },
    };
    check(counts == want, || {
        format!("postgres {side}: {counts:?}, expected {want:?}")
    })
}

/// Vacuums the system catalogs that creating and dropping hundreds of
/// schemas bloats: on a server without autovacuum (a test server, say) the
/// dead rows would slow every later run's DDL. Best effort: it needs the
/// database's owner, and the figures are taken already.
async fn vacuum_catalogs(admin: &PgPool) {
    let sql = "VACUUM pg_catalog.pg_class, pg_catalog.pg_attribute, pg_catalog.pg_depend, \
               pg_catalog.pg_type, pg_catalog.pg_index, pg_catalog.pg_namespace, \
               pg_catalog.pg_constraint, pg_catalog.pg_attrdef, pg_catalog.pg_description, \
               pg_catalog.pg_sequence";
    if let Err(e) = sqlx::query(sql).execute(admin).await {
        eprintln!("postgres: could not vacuum the system catalogs: {e}");
    }
}
