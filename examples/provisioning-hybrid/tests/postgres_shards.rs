//! Tenant databases on PostgreSQL shard servers (`config --postgres`): two
//! databases of the test server stand in for two servers, with shared
//! tenants as rows, dedicated ones as a schema of their own in one region and
//! a database of their own in the other. Every operation works as on SQLite:
//! the lifecycle, the generic workflows, plan changes that move the data,
//! a release rolled out and checked for drift, and API and worker processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scratch.rs"]
mod scratch;
#[allow(dead_code)]
#[path = "http/server.rs"]
mod server;
mod support;
#[path = "support/worker.rs"]
mod worker;

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use scratch::{Scratch, column_at, exec};
use serde_json::{Value, json};
use server::{Server, send};
use support::{files_under, run};
use worker::Worker;

/// The built-in PostgreSQL configuration, as `config --postgres` prints it.
const BUILT_IN: &str = include_str!("../config/postgres.toml");

/// A catalog and two shard servers (scratch databases), and the config file
/// that puts them in the built-in PostgreSQL configuration's place. Tenants
/// with a database of their own get one on the server: [`Shards::tenant`]
/// names them uniquely, and they are dropped with the guard.
struct Shards {
    catalog: Scratch,
    eu: Scratch,
    us: Scratch,
    config: PathBuf,
    suffix: String,
    tmp: tempfile::TempDir,
}

impl Shards {
    fn new(label: &str) -> Shards {
        let (catalog, eu, us) = (
            Scratch::new(&format!("{label}_cat")),
            Scratch::new(&format!("{label}_eu")),
            Scratch::new(&format!("{label}_us")),
        );
        let tmp = tempfile::tempdir().unwrap();
        let server = "postgres://postgres@127.0.0.1:5432";
        let text = BUILT_IN
            .replace(&format!("{server}/hybrid_eu_west"), &eu.url)
            .replace(&format!("{server}/hybrid_us_east"), &us.url)
            .replace(&format!("{server}/hybrid\""), &format!("{}\"", catalog.url))
            .replace(&format!("{server}/{{tenant}}"), &us.sibling("{tenant}"));
        for built_in in ["/hybrid_eu_west", "/hybrid_us_east", "/hybrid\""] {
            assert!(!text.contains(built_in), "{built_in} left in {text}");
        }
        let config = tmp.path().join("postgres.toml");
        std::fs::write(&config, text).unwrap();
        let suffix = catalog.url.rsplit('_').next().unwrap().to_owned();
        Shards {
            catalog,
            eu,
            us,
            config,
            suffix,
            tmp,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn config(&self) -> &str {
        self.config.to_str().unwrap()
    }

    /// A tenant id unique to this test, for a tenant with a database of
    /// its own on the server (database names are the server's, not the
    /// scratch database's).
    fn tenant(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    /// The CLI with `--json` and this config.
    fn cli(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--config", self.config()]);
        server::cli(self.dir(), &all)
    }

    /// The CLI with this config, expecting failure: its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--config", self.config()]);
        support::fails(self.dir(), &all)
    }

    /// The URL of a tenant's own database.
    fn database_of(&self, tenant: &str) -> String {
        self.us
            .sibling(&format!("tenant_{}", tenant.replace('-', "_")))
    }

    /// Whether the server has database `name`.
    fn has_database(&self, name: &str) -> bool {
        let sql = format!("SELECT datname::text FROM pg_database WHERE datname = '{name}'");
        !self.catalog.column(&sql).is_empty()
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        let prefix = format!("tenant_%_{}", self.suffix);
        let sql = format!("SELECT datname::text FROM pg_database WHERE datname LIKE '{prefix}'");
        for name in self.catalog.column(&sql) {
            exec(
                self.catalog.server(),
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            );
        }
    }
}

/// A receipt's status.
fn status(receipt: &Value) -> &str {
    receipt["status"].as_str().unwrap()
}

#[test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
fn tenants_live_where_the_postgres_shard_map_puts_them_through_their_whole_life() {
    let shards = Shards::new("life");
    let big = shards.tenant("big");
    for (tenant, plan, region) in [
        ("acme", "standard", "eu-west"),
        ("zed", "premium", "eu-west"),
        (big.as_str(), "premium", "us-east"),
    ] {
        let receipt = shards.cli(&[
            "create", "--tenant", tenant, "--plan", plan, "--region", region,
        ]);
        assert_eq!(status(&receipt), "succeeded", "{receipt}");
    }
    // Where each went, as the placement records it (no password, ever).
    let database = |tenant: &str| {
        shards.cli(&["status", tenant])["placement"]["database"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(database("acme"), shards.eu.url);
    assert_eq!(
        database("zed"),
        format!("{}?schema=tenant_zed", shards.eu.url)
    );
    assert_eq!(database(&big), shards.database_of(&big));
    // Seeded there: the shared tenant's rows, the schema's, the database's.
    let admins = "SELECT email FROM users ORDER BY email";
    assert_eq!(
        shards
            .eu
            .column("SELECT email FROM users WHERE tenant_id = 'acme'"),
        ["admin@acme.example"]
    );
    assert_eq!(
        shards.eu.column("SELECT email FROM tenant_zed.users"),
        ["admin@zed.example"]
    );
    assert_eq!(
        column_at(&shards.database_of(&big), admins),
        [format!("admin@{big}.example")]
    );

    // The generic workflows write in each tenant's database, once per
    // request, and refuse what the data rules out, writing nothing.
    for tenant in ["acme", "zed", big.as_str()] {
        let service = &["--service", "billing"];
        let mut args = vec![
            "provision",
            "service",
            "--tenant",
            tenant,
            "--tier",
            "basic",
        ];
        args.extend(service);
        assert_eq!(status(&shards.cli(&args)), "succeeded", "{tenant}");
        let user = [
            "provision",
            "user",
            "--tenant",
            tenant,
            "--email",
            "bob@x.test",
            "--role",
            "member",
        ];
        assert_eq!(status(&shards.cli(&user)), "succeeded", "{tenant}");
        let again = shards.fails(&user);
        assert!(again.contains("already exists"), "{again}");
        let compute = [
            "provision",
            "resource",
            "--tenant",
            tenant,
            "--service",
            "billing",
            "--type",
            "compute",
        ];
        for _ in 0..2 {
            assert_eq!(status(&shards.cli(&compute)), "succeeded", "{tenant}");
        }
        let full = shards.fails(&compute);
        assert!(
            full.contains("tier basic allows 2 compute resource(s)"),
            "{full}"
        );
    }
    // Users, compute allocations and the subscription's tier, of the tables
    // in `schema` (`public`, or a tenant's own) that `scope` selects.
    let counts = |url: &str, schema: &str, scope: &str| {
        column_at(
            url,
            &format!(
                "SELECT (SELECT count(*) FROM {schema}.users WHERE {scope})::text || ' ' || \
                 (SELECT count(*) FROM {schema}.settings WHERE {scope} AND key LIKE 'compute.%')::text \
                 || ' ' || (SELECT value ->> 'tier' FROM {schema}.settings \
                            WHERE {scope} AND key = 'service.billing')"
            ),
        )
    };
    let eu = shards.eu.url.as_str();
    assert_eq!(counts(eu, "public", "tenant_id = 'acme'"), ["2 2 basic"]);
    assert_eq!(counts(eu, "tenant_zed", "true"), ["2 2 basic"]);
    assert_eq!(
        counts(&shards.database_of(&big), "public", "true"),
        ["2 2 basic"]
    );

    // A plan change that needs another isolation moves the data: rows into a
    // schema of its own, and a schema's back into the shared database.
    assert_eq!(
        status(&shards.cli(&["change-plan", "--tenant", "acme", "--plan", "premium"])),
        "succeeded"
    );
    assert_eq!(
        status(&shards.cli(&["change-plan", "--tenant", "zed", "--plan", "standard"])),
        "succeeded"
    );
    assert_eq!(
        database("acme"),
        format!("{}?schema=tenant_acme", shards.eu.url)
    );
    assert_eq!(database("zed"), shards.eu.url);
    assert_eq!(counts(eu, "tenant_acme", "true"), ["2 2 basic"]);
    assert_eq!(counts(eu, "public", "tenant_id = 'zed'"), ["2 2 basic"]);
    assert_eq!(
        shards
            .eu
            .column("SELECT count(*)::text FROM users WHERE tenant_id = 'acme'"),
        ["0"],
        "the shared rows left with the tenant"
    );
    assert_eq!(
        shards
            .eu
            .column("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'tenant_%'"),
        ["tenant_acme"],
        "zed's schema went when its data had moved"
    );
    // Workflows follow the tenant to where it lives now.
    let user = [
        "provision",
        "user",
        "--tenant",
        "zed",
        "--email",
        "eve@x.test",
        "--role",
        "viewer",
    ];
    assert_eq!(status(&shards.cli(&user)), "succeeded");
    assert_eq!(
        shards
            .eu
            .column("SELECT email FROM users WHERE tenant_id = 'zed' ORDER BY email"),
        ["admin@zed.example", "bob@x.test", "eve@x.test"]
    );

    // Suspend, resume, and delete: a database of its own is dropped, shared
    // rows are removed.
    shards.cli(&["suspend", &big]);
    assert_eq!(shards.cli(&["status", &big])["state"], "suspended");
    shards.cli(&["resume", &big]);
    let db_name = format!("tenant_{}", big.replace('-', "_"));
    assert!(shards.has_database(&db_name));
    shards.cli(&["delete", &big, "--purge"]);
    assert!(!shards.has_database(&db_name));
    shards.cli(&["delete", "zed", "--purge"]);
    assert_eq!(
        shards
            .eu
            .column("SELECT count(*)::text FROM settings WHERE tenant_id = 'zed'"),
        ["0"]
    );
    // Nothing of it went to the data directory: no SQLite file anywhere.
    let files: Vec<_> = files_under(shards.dir())
        .into_iter()
        .filter(|p| p.ends_with(".sqlite"))
        .collect();
    assert!(files.is_empty(), "{files:?}");
    let drift = shards.cli(&["drift"]);
    assert_eq!(drift["drifted"], 0, "{drift}");
}

#[test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
fn a_release_rolls_out_over_postgres_shards_and_leaves_no_drift() {
    let shards = Shards::new("fleet");
    let big = shards.tenant("big");
    for (tenant, plan, region) in [
        ("acme", "free", "eu-west"),
        ("zed", "premium", "eu-west"),
        (big.as_str(), "premium", "us-east"),
    ] {
        let receipt = shards.cli(&[
            "create",
            "--tenant",
            tenant,
            "--plan",
            plan,
            "--region",
            region,
            "--release",
            "base",
        ]);
        assert_eq!(status(&receipt), "succeeded", "{receipt}");
    }
    let mut args = vec!["drift", "--json", "--config", shards.config()];
    args.extend(["--data-dir", shards.dir().to_str().unwrap()]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_provisioning-hybrid"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "drift found: exit 3");
    let rollout = shards.cli(&["migrate-all"]);
    assert_eq!(rollout["rollout"]["status"], "completed", "{rollout}");
    let drift = shards.cli(&["drift"]);
    assert_eq!(drift["drifted"], 0, "{drift}");
    // The fleet release's column, in the shared database, the schema and
    // the database of its own.
    let estimate = "SELECT count(*)::text FROM information_schema.columns \
                    WHERE table_name = 'tasks' AND column_name = 'estimate_hours'";
    assert_eq!(
        shards
            .eu
            .column(&format!("{estimate} AND table_schema = 'public'")),
        ["1"]
    );
    assert_eq!(
        shards
            .eu
            .column(&format!("{estimate} AND table_schema = 'tenant_zed'")),
        ["1"]
    );
    assert_eq!(column_at(&shards.database_of(&big), estimate), ["1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn api_and_worker_processes_provision_into_postgres_shards() {
    let shards = Shards::new("procs");
    let env = [("PROVISIONING_HYBRID_CONFIG", shards.config())];
    let server = Server::start_with(shards.dir(), &[], &env);
    let _worker = Worker::start_with(shards.dir(), &shards.catalog.url, "w", "2", &env);
    let big = shards.tenant("big");
    for (tenant, plan, region) in [
        ("acme", "standard", "eu-west"),
        ("zed", "premium", "eu-west"),
        (big.as_str(), "premium", "us-east"),
    ] {
        let created = server.create(tenant, plan, region).await;
        assert_eq!(status(&created), "succeeded", "{created}");
        let (code, service) = send(
            server
                .req(Method::POST, "/api/v1/provisioning/service?wait=true")
                .header("X-Tenant-ID", tenant)
                .json(&json!({ "service": "billing", "tier": "standard" })),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{service}");
        assert_eq!(status(&service), "succeeded", "{service}");
    }
    let tier = "SELECT value ->> 'tier' FROM settings WHERE key = 'service.billing'";
    assert_eq!(
        shards.eu.column(&format!("{tier} AND tenant_id = 'acme'")),
        ["standard"]
    );
    assert_eq!(
        shards
            .eu
            .column(&tier.replace("FROM settings", "FROM tenant_zed.settings")),
        ["standard"]
    );
    assert_eq!(column_at(&shards.database_of(&big), tier), ["standard"]);
    let requests = shards
        .catalog
        .column("SELECT status || ' ' || count(*) FROM provisioning.requests GROUP BY status");
    assert_eq!(requests, ["succeeded 6"]);
    assert!(
        shards.has_database(&format!("tenant_{}", big.replace('-', "_"))),
        "made by the worker"
    );
}

#[test]
fn a_shard_map_on_two_backends_is_refused_naming_a_shard_of_each() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("mixed.toml");
    let text = include_str!("../config/default.toml").replace(
        "sqlite:databases/us-east/us-east-dedicated-1/{tenant}.sqlite",
        "postgres://app:s3cret@127.0.0.1:5432/{tenant}",
    );
    std::fs::write(&config, text).unwrap();
    let args = [
        "create", "--tenant", "acme", "--plan", "free", "--region", "eu-west", "--config",
    ];
    let mut all = args.to_vec();
    all.push(config.to_str().unwrap());
    let (ok, _, stderr) = run(tmp.path(), &all);
    assert!(!ok);
    assert!(
        stderr.contains("shard us-east-dedicated-1's connection is a PostgreSQL URL")
            && stderr.contains("every shard's connection must be on one backend"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let tenants = std::fs::read_dir(tmp.path().join("databases"));
    assert!(tenants.is_err(), "no tenant database was made");
}
