//! PostgreSQL: where a tenant's data is (located once, recorded, opened from
//! the record), and moving it (copy, compare) between schemas, databases
//! and shared databases, against the real server.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::{self, dedicated_twin, shared_schema, with_database, workload_counts};
use common::*;
use provisioning_core::Entity;
use provisioning_core::{
    DatabaseOutcome, DropReason, Error, Isolation, Placement, TableComparison, TenantSchemaManager,
};
use provisioning_sqlx::{Error as SqlxError, PostgresDedicatedMode, PostgresSchemaManager};

const PASSWORD: &str = "s3cret-pw";

/// `p` with its location recorded, as the place step does.
fn located(m: &PostgresSchemaManager, p: Placement) -> Placement {
    let location = m.locate(&p).unwrap();
    p.with_database(location)
}

/// A manager with shards `pg-a` and `pg-b`, a schema per tenant in each
/// of the two databases.
async fn schema_shards(url_a: &str, url_b: &str) -> PostgresSchemaManager {
    PostgresSchemaManager::builder()
        .shard(
            "pg-a".parse().unwrap(),
            format!("{url_a}?schema={{tenant}}"),
        )
        .shard(
            "pg-b".parse().unwrap(),
            format!("{url_b}?schema={{tenant}}"),
        )
        .dedicated(schema("postgres", false).await)
        .build()
        .unwrap()
}

/// Provisions, migrates and seeds.
async fn ready(m: &PostgresSchemaManager, p: &Placement) {
    m.provision(p).await.unwrap();
    m.migrate(p).await.unwrap();
    m.seed(p).await.unwrap();
}

fn all_match(compared: &[TableComparison]) {
    assert!(!compared.is_empty());
    for c in compared {
        assert!(c.matches(), "{c:?}");
    }
}

fn rows_of(compared: &[TableComparison], table: &str) -> (u64, u64) {
    let c = compared.iter().find(|c| c.table == table).unwrap();
    (c.source_rows, c.target_rows)
}

/// Roles 3, users 1, user_roles 1 (the seed); a project, two tasks, three
/// comments, a setting, an audit entry; the seed ledger's row.
const WORKLOAD_COUNTS: [i64; 10] = [3, 1, 1, 1, 2, 3, 0, 1, 1, 1];

/// A project with two tasks and three comments (one with a quote and a
/// non-ASCII character), a setting and an audit entry, in `schema`.
async fn write_work(url: &str, schema: &str) {
    let s = format!("\"{schema}\"");
    pg::exec_script(
        url,
        &format!(
            "INSERT INTO {s}.projects (name, slug, owner_id) SELECT 'Launch', 'launch', id FROM {s}.users;
             INSERT INTO {s}.tasks (project_id, title, assignee_id, due_date)
                 SELECT p.id, v.t, u.id, DATE '2025-01-31'
                 FROM {s}.projects p, {s}.users u, (VALUES ('Write docs'), ('Ship it')) v(t);
             INSERT INTO {s}.comments (task_id, author_id, body)
                 SELECT id, assignee_id, 'note on ' || title FROM {s}.tasks;
             INSERT INTO {s}.comments (task_id, body)
                 SELECT id, 'it''s shipped ✓' FROM {s}.tasks WHERE title = 'Ship it';
             INSERT INTO {s}.settings (key, value) VALUES ('theme', '{{\"dark\": true}}');
             INSERT INTO {s}.audit_log (action, payload) VALUES ('project.created', '{{\"slug\": \"launch\"}}');"
        ),
    )
    .await;
}

/// (a) A schema on one shard to a schema on another (two databases standing
/// in for two servers: `COPY` between them), twice with the same result.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn schema_to_schema_on_another_shard_copies_every_row_and_again_the_same() {
    let url = pg::url();
    let (db_a, url_a) = pg::scratch_database(&url, "move_a").await;
    let (db_b, url_b) = pg::scratch_database(&url, "move_b").await;
    let m = schema_shards(&url_a, &url_b).await;
    let tenant = unique_tenant("acme");
    let source = located(&m, plan(&tenant, Isolation::Dedicated, "pg-a"));
    let target = located(&m, plan(&tenant, Isolation::Dedicated, "pg-b"));
    let name = m.dedicated_name(&source.tenant_id).unwrap();
    assert!(
        source
            .database
            .as_deref()
            .unwrap()
            .ends_with(&format!("?schema={name}"))
    );

    ready(&m, &source).await;
    write_work(&url_a, &name).await;
    m.provision(&target).await.unwrap();
    m.migrate(&target).await.unwrap();
    let ledger_at_target = format!(
        "SELECT COUNT(*) FROM pg_tables WHERE schemaname = '{name}' AND tablename = '_tenant_seeds'"
    );
    assert_eq!(
        pg::scalar(&url_b, ledger_at_target.clone()).await,
        0,
        "never seeded"
    );

    let dry = m.compare_tenant(&source, &source).await.unwrap();
    all_match(&dry);
    assert_eq!(
        rows_of(&dry, "comments"),
        (3, 3),
        "a dry run counts the source"
    );

    for round in 0..2 {
        let copied = m.copy_tenant(&source, &target).await.unwrap();
        assert_eq!(copied, 14, "round {round}");
        let compared = m.compare_tenant(&source, &target).await.unwrap();
        all_match(&compared);
        assert_eq!(compared.len(), 10, "nine tables and the seed ledger");
        assert_eq!(rows_of(&compared, "tasks"), (2, 2));
        assert_eq!(workload_counts(&url_b, Some(&name)).await, WORKLOAD_COUNTS);
    }
    assert_eq!(
        pg::scalar(&url_b, ledger_at_target).await,
        1,
        "the copy made it"
    );
    let bodies = pg::texts(
        &url_b,
        format!("SELECT body FROM \"{name}\".comments ORDER BY id"),
    )
    .await;
    assert_eq!(
        bodies,
        ["note on Write docs", "note on Ship it", "it's shipped ✓"]
    );
    // The target counts as seeded, and its sequences are past the copied ids.
    assert!(m.seed(&target).await.unwrap().is_empty());
    pg::exec(
        &url_b,
        format!(
            "INSERT INTO \"{name}\".tasks (project_id, title) SELECT id, 'new' FROM \"{name}\".projects"
        ),
    )
    .await;
    let ids = pg::texts(
        &url_b,
        format!("SELECT id::text FROM \"{name}\".tasks ORDER BY id"),
    )
    .await;
    assert_eq!(ids, ["1", "2", "3"]);
    // The source is unchanged.
    assert_eq!(workload_counts(&url_a, Some(&name)).await, WORKLOAD_COUNTS);

    pg::drop_database(&url, &db_a).await;
    pg::drop_database(&url, &db_b).await;
}

/// (b) A schema to a database of its own (a `{tenant}` template); the
/// target counts as seeded.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn schema_to_a_database_of_its_own() {
    let url = pg::url();
    let (db_a, url_a) = pg::scratch_database(&url, "move_s2d").await;
    let m = PostgresSchemaManager::builder()
        .shard(
            "pg-a".parse().unwrap(),
            format!("{url_a}?schema={{tenant}}"),
        )
        .shard("pg-d".parse().unwrap(), with_database(&url, "{tenant}"))
        .dedicated(schema("postgres", false).await)
        .name_prefix(pg::unique_prefix("mv"))
        .build()
        .unwrap();
    let tenant = unique_tenant("globex");
    let source = located(&m, plan(&tenant, Isolation::Dedicated, "pg-a"));
    let target = located(&m, plan(&tenant, Isolation::Dedicated, "pg-d"));
    let name = m.dedicated_name(&source.tenant_id).unwrap();
    let tenant_url = with_database(&url, &name);
    assert_eq!(
        target.database.as_deref(),
        Some(tenant_url.as_str()),
        "the tenant's own database"
    );

    ready(&m, &source).await;
    write_work(&url_a, &name).await;
    assert_eq!(
        m.provision(&target).await.unwrap(),
        DatabaseOutcome::Created
    );
    assert!(pg::database_exists(&url, &name).await);
    m.migrate(&target).await.unwrap();

    assert_eq!(m.copy_tenant(&source, &target).await.unwrap(), 14);
    all_match(&m.compare_tenant(&source, &target).await.unwrap());
    assert_eq!(workload_counts(&tenant_url, None).await, WORKLOAD_COUNTS);
    let dry = m.preview(&target).await.unwrap();
    assert!(dry.exists && dry.pending_migrations.is_empty() && dry.pending_seeds.is_empty());
    let email = pg::texts(&tenant_url, "SELECT email FROM users".into()).await;
    assert_eq!(email, [format!("admin@{tenant}.example")]);

    m.drop_tenant(&target, DropReason::Delete).await.unwrap();
    assert!(!pg::database_exists(&url, &name).await);
    pg::drop_database(&url, &db_a).await;
}

/// A schema to a database of its own recorded on the same shard, whose one
/// pool (of one connection) serves both sides' lookups: the copy and the
/// comparison open the database side first and never wait on themselves.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_move_through_one_pool_of_one_connection_does_not_wait_on_itself() {
    let url = pg::url();
    let (db_a, url_a) = pg::scratch_database(&url, "move_pool1").await;
    let m = PostgresSchemaManager::builder()
        .shard("pg-a".parse().unwrap(), &url_a)
        .dedicated(dedicated_twin())
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .name_prefix(pg::unique_prefix("p1"))
        .pool_size(1)
        .build()
        .unwrap();
    let source = located(&m, plan("acme", Isolation::Dedicated, "pg-a"));
    let name = m.dedicated_name(&source.tenant_id).unwrap();
    // Its own database on the same server: a location recorded by hand, as
    // an operator moving it there would.
    let target = source
        .clone()
        .with_database(Some(with_database(&url_a, &name)));
    ready(&m, &source).await;
    pg::exec_script(
        &url_a,
        &format!(
            "INSERT INTO \"{name}\".roles (name) VALUES ('owner'), ('member');
             INSERT INTO \"{name}\".users (email) VALUES ('a@acme.example');
             INSERT INTO \"{name}\".user_roles SELECT u.id, r.id FROM \"{name}\".users u, \"{name}\".roles r;"
        ),
    )
    .await;
    assert_eq!(
        m.provision(&target).await.unwrap(),
        DatabaseOutcome::Created
    );
    m.migrate(&target).await.unwrap();
    let moved = async {
        let copied = m.copy_tenant(&source, &target).await.unwrap();
        (copied, m.compare_tenant(&source, &target).await.unwrap())
    };
    let (copied, compared) = tokio::time::timeout(std::time::Duration::from_secs(20), moved)
        .await
        .expect("the move waited on its own pool");
    assert_eq!(copied, 5);
    all_match(&compared);
    assert_eq!(rows_of(&compared, "user_roles"), (2, 2));
    let own = with_database(&url, &name);
    assert_eq!(
        pg::scalar(&own, "SELECT COUNT(*) FROM roles".into()).await,
        2
    );

    m.drop_tenant(&target, DropReason::Delete).await.unwrap();
    assert!(!pg::database_exists(&url, &name).await);
    pg::drop_database(&url, &db_a).await;
}

/// A shared tenant's rows in each table of the shared schema, and its seed
/// ledger's.
async fn shared_counts(url: &str, tenant: &str) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["roles", "users", "user_roles", "_tenant_seeds"] {
        counts.push(
            pg::scalar(
                url,
                format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = '{tenant}'"),
            )
            .await,
        );
    }
    counts
}

async fn ids(url: &str, table: &str, tenant: &str) -> Vec<String> {
    pg::texts(
        url,
        format!("SELECT id::text FROM {table} WHERE tenant_id = '{tenant}' ORDER BY id"),
    )
    .await
}

/// (c) Shared to dedicated (a schema in the same database: `INSERT ...
/// SELECT`, `tenant_id` dropped), then back to another shared database
/// holding another tenant (`COPY`, `tenant_id` filled), whose rows stay as
/// they were; into a shared database where another tenant uses the same row
/// ids, refused with nothing written.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn shared_to_dedicated_and_back_to_a_shared_database_holding_another_tenant() {
    let url = pg::url();
    let (db_s1, url_s1) = pg::scratch_database(&url, "move_s1").await;
    let (db_s2, url_s2) = pg::scratch_database(&url, "move_s2").await;
    let (db_s3, url_s3) = pg::scratch_database(&url, "move_s3").await;
    let m = PostgresSchemaManager::builder()
        .shard("pg-s1".parse().unwrap(), &url_s1)
        .shard(
            "pg-d".parse().unwrap(),
            format!("{url_s1}?schema={{tenant}}"),
        )
        .shard("pg-s2".parse().unwrap(), &url_s2)
        .shard("pg-s3".parse().unwrap(), &url_s3)
        .shared(shared_schema())
        .dedicated(dedicated_twin())
        .build()
        .unwrap();
    let shared = |t: &str, shard: &str| located(&m, plan(t, Isolation::Shared, shard));

    // acme is seeded after globex: its row ids are 3 and 4 (roles), 2 (users).
    ready(&m, &shared("globex", "pg-s1")).await;
    let acme_s1 = shared("acme", "pg-s1");
    ready(&m, &acme_s1).await;
    pg::exec(
        &url_s1,
        "INSERT INTO users (tenant_id, email) VALUES ('acme', 'dev@acme.example')".into(),
    )
    .await;
    assert_eq!(shared_counts(&url_s1, "acme").await, [2, 2, 1, 1]);

    // Shared to dedicated.
    let acme_d = located(&m, plan("acme", Isolation::Dedicated, "pg-d"));
    m.provision(&acme_d).await.unwrap();
    m.migrate(&acme_d).await.unwrap();
    assert_eq!(m.copy_tenant(&acme_s1, &acme_d).await.unwrap(), 6);
    let compared = m.compare_tenant(&acme_s1, &acme_d).await.unwrap();
    all_match(&compared);
    assert_eq!(rows_of(&compared, "users"), (2, 2));
    let dedicated_roles = pg::texts(
        &url_s1,
        "SELECT id || ' ' || name FROM tenant_acme.roles ORDER BY id".into(),
    )
    .await;
    assert_eq!(dedicated_roles, ["3 owner", "4 member"]);
    let tenant_columns = pg::scalar(
        &url_s1,
        "SELECT COUNT(*) FROM information_schema.columns \
         WHERE table_schema = 'tenant_acme' AND column_name = 'tenant_id' AND table_name <> '_tenant_seeds'"
            .into(),
    )
    .await;
    assert_eq!(tenant_columns, 0, "the dedicated tables have no tenant_id");
    assert_eq!(
        shared_counts(&url_s1, "globex").await,
        [2, 1, 1, 1],
        "the source's other tenant is untouched"
    );

    // Dedicated back to a shared database where initech has ids 1 and 2.
    let initech = [2, 1, 1, 1];
    ready(&m, &shared("initech", "pg-s2")).await;
    let acme_s2 = shared("acme", "pg-s2");
    assert_eq!(m.copy_tenant(&acme_d, &acme_s2).await.unwrap(), 6);
    all_match(&m.compare_tenant(&acme_d, &acme_s2).await.unwrap());
    all_match(&m.compare_tenant(&acme_s1, &acme_s2).await.unwrap());
    assert_eq!(shared_counts(&url_s2, "acme").await, [2, 2, 1, 1]);
    assert_eq!(ids(&url_s2, "roles", "acme").await, ["3", "4"]);
    assert_eq!(shared_counts(&url_s2, "initech").await, initech);
    assert_eq!(ids(&url_s2, "roles", "initech").await, ["1", "2"]);
    // The sequences moved past the copied ids: a new tenant's rows fit.
    ready(&m, &shared("umbrella", "pg-s2")).await;
    assert_eq!(ids(&url_s2, "roles", "umbrella").await, ["5", "6"]);
    assert_eq!(ids(&url_s2, "users", "umbrella").await, ["4"]);

    // Where hooli already uses role ids 3 and 4: refused, nothing written.
    ready(&m, &shared("initech", "pg-s3")).await;
    ready(&m, &shared("hooli", "pg-s3")).await;
    let acme_s3 = shared("acme", "pg-s3");
    let err = m.copy_tenant(&acme_d, &acme_s3).await.unwrap_err();
    match &err {
        Error::Conflict { kind, id, reason } => {
            assert_eq!(
                (*kind, id.as_str()),
                (provisioning_core::Entity::Table, "roles"),
                "{err}"
            );
            assert!(
                reason.contains("acme") && reason.contains("key 3"),
                "{reason}"
            );
        }
        other => panic!("expected a conflict on roles, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(shared_counts(&url_s3, "acme").await, [0, 0, 0, 0]);
    assert_eq!(shared_counts(&url_s3, "initech").await, initech);
    assert_eq!(shared_counts(&url_s3, "hooli").await, initech);
    // The same refusal within one database (the `INSERT ... SELECT` path):
    // a role made in acme's schema with id 1, which globex uses in s1.
    pg::exec(
        &url_s1,
        "INSERT INTO tenant_acme.roles (id, name) VALUES (1, 'auditor')".into(),
    )
    .await;
    let err = m.copy_tenant(&acme_d, &acme_s1).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { kind: Entity::Table, id, reason } if id == "roles" && reason.contains("key 1")),
        "{err}"
    );
    assert_eq!(
        shared_counts(&url_s1, "acme").await,
        [2, 2, 1, 1],
        "acme's rows at s1 are as they were"
    );
    assert_eq!(shared_counts(&url_s1, "globex").await, [2, 1, 1, 1]);

    for db in [&db_s1, &db_s2, &db_s3] {
        pg::drop_database(&url, db).await;
    }
}

/// (d) A recorded location is opened after the map changes; a placement
/// recording nothing follows the map; a recorded server without configured
/// credentials is refused; no password shows anywhere.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_recorded_location_is_opened_after_the_map_changes() {
    let url = pg::url();
    let url_pw = pg::with_password(&url, PASSWORD);
    let (db1, url1) = pg::scratch_database(&url, "loc_1").await;
    let (db2, url2) = pg::scratch_database(&url, "loc_2").await;
    let url1_pw = pg::with_password(&url1, PASSWORD);
    let url2_pw = pg::with_password(&url2, PASSWORD);
    let prefix = pg::unique_prefix("loc");
    let build = |dedicated_shard: String, shared_shard: &str| {
        let b = PostgresSchemaManager::builder()
            .shard("pg-1".parse().unwrap(), dedicated_shard)
            .shard("pg-s".parse().unwrap(), shared_shard)
            .shared(shared_schema())
            .dedicated(dedicated_twin())
            .name_prefix(&prefix)
            .dedicated_mode(PostgresDedicatedMode::Schema);
        assert!(!format!("{b:?}").contains(PASSWORD));
        b.build().unwrap()
    };
    // Before: a database per tenant, shared tenants in db1.
    let before = build(with_database(&url_pw, "{tenant}"), &url1_pw);
    let tenant = unique_tenant("acme");
    let acme = located(&before, plan(&tenant, Isolation::Dedicated, "pg-1"));
    let shop = located(&before, plan(&tenant, Isolation::Shared, "pg-s"));
    let name = before.dedicated_name(&acme.tenant_id).unwrap();
    for p in [&acme, &shop] {
        let recorded = p.database.as_deref().unwrap();
        assert!(
            recorded.contains(":***@") && !recorded.contains(PASSWORD),
            "{recorded}"
        );
        ready(&before, p).await;
    }
    assert!(pg::database_exists(&url, &name).await);

    // After: dedicated tenants become schemas in db2, shared ones go to db2.
    let after = build(format!("{url2_pw}?schema={{tenant}}"), &url2_pw);
    for p in [&acme, &shop] {
        let dry = after.preview(p).await.unwrap();
        assert!(
            dry.exists && dry.pending_migrations.is_empty() && dry.pending_seeds.is_empty(),
            "{dry:?}"
        );
        assert!(after.migrate(p).await.unwrap().is_empty());
        assert!(after.seed(p).await.unwrap().is_empty());
        assert_ne!(after.locate(p).unwrap(), p.database, "the map moved on");
    }
    assert_eq!(
        after.preview(&acme).await.unwrap().location,
        before.preview(&acme).await.unwrap().location
    );
    // Placed before locations were recorded: the map says where.
    let unrecorded = plan(&tenant, Isolation::Shared, "pg-s");
    let dry = after.preview(&unrecorded).await.unwrap();
    assert!(
        dry.exists && dry.pending_migrations.len() == 3,
        "db2 is empty: {dry:?}"
    );
    assert_eq!(shared_counts(&url1, &tenant).await, [2, 1, 1, 1]);

    // A recorded server no shard has credentials for.
    let elsewhere = build(
        "postgres://app:other-pw@db.invalid:5432/{tenant}".into(),
        "postgres://app:other-pw@db.invalid:5432/app",
    );
    let err = elsewhere.preview(&acme).await.unwrap_err();
    match &err {
        Error::InvalidInput { field, rule } => {
            assert_eq!(*field, "placement.database");
            assert!(
                rule.contains("no configured shard has credentials"),
                "{rule}"
            );
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    for shown in [
        format!("{err} {err:?}"),
        format!("{before:?} {after:?} {elsewhere:?}"),
        format!("{acme:?} {shop:?}"),
        serde_json::to_string(&acme).unwrap(),
        before.preview(&acme).await.unwrap().location,
    ] {
        assert!(
            !shown.contains(PASSWORD) && !shown.contains("other-pw"),
            "{shown}"
        );
    }

    // Removal follows the record too.
    after.drop_tenant(&acme, DropReason::Delete).await.unwrap();
    assert!(!pg::database_exists(&url, &name).await);
    pg::drop_database(&url, &db1).await;
    pg::drop_database(&url, &db2).await;
}

/// (d) Every form of location, and every refusal, without a password; no
/// server needed.
#[tokio::test]
async fn every_form_of_location_and_every_refusal_is_free_of_the_password() {
    let m = PostgresSchemaManager::builder()
        .shard(
            "pg-s".parse().unwrap(),
            "postgres://app:s3cret-pw@db-eu:5432/app",
        )
        .shard(
            "pg-db".parse().unwrap(),
            "postgres://app:s3cret-pw@db-{region}:5432/{tenant}?sslmode=prefer",
        )
        .shard(
            "pg-sc".parse().unwrap(),
            "postgres://app:s3cret-pw@db-eu:5432/app_{shard}?schema={tenant}",
        )
        .shared(shared_schema())
        .dedicated(dedicated_twin())
        .build()
        .unwrap();
    let schemas = PostgresSchemaManager::builder()
        .shard(
            "pg-s".parse().unwrap(),
            "postgres://app:s3cret-pw@db-eu:5432/app",
        )
        .dedicated(dedicated_twin())
        .dedicated_mode(PostgresDedicatedMode::Schema)
        .build()
        .unwrap();
    let locate = |m: &PostgresSchemaManager, isolation, shard| {
        m.locate(&plan("acme-eu", isolation, shard))
            .unwrap()
            .unwrap()
    };
    let cases = [
        (
            locate(&m, Isolation::Shared, "pg-s"),
            "postgres://app:***@db-eu:5432/app",
        ),
        (
            locate(&m, Isolation::Dedicated, "pg-s"),
            "postgres://app:***@db-eu:5432/tenant_acme_eu",
        ),
        (
            locate(&schemas, Isolation::Dedicated, "pg-s"),
            "postgres://app:***@db-eu:5432/app?schema=tenant_acme_eu",
        ),
        (
            locate(&m, Isolation::Dedicated, "pg-db"),
            "postgres://app:***@db-eu-west:5432/tenant_acme_eu?sslmode=prefer",
        ),
        (
            locate(&m, Isolation::Dedicated, "pg-sc"),
            "postgres://app:***@db-eu:5432/app_pg-sc?schema=tenant_acme_eu",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }

    let mut shown = vec![format!("{m:?}"), format!("{schemas:?}")];
    for shard in ["pg-db", "pg-sc"] {
        let err = m
            .locate(&plan("acme", Isolation::Shared, shard))
            .unwrap_err();
        match &err {
            Error::InvalidInput { field, rule } => {
                assert_eq!(*field, "connection");
                assert!(
                    rule.contains(shard) && rule.contains("without {tenant}"),
                    "{rule}"
                );
            }
            other => panic!("expected invalid input, got {other:?}"),
        }
        shown.push(err.to_string());
    }
    let err = m
        .locate(&plan("acme", Isolation::Shared, "pg-nowhere"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                kind: Entity::Shard,
                ..
            }
        ),
        "{err}"
    );

    for url in [
        "postgres://app:s3cret-pw@{tenant}.db/app",
        "postgres://app:s3cret-pw@db/app?schema=fixed",
        "postgres://app:s3cret-pw@db/{tenant}?schema={tenant}",
        "postgres://app:s3cret-pw@db/app?port=x",
    ] {
        let err = PostgresSchemaManager::builder()
            .shard("eu-9".parse().unwrap(), url)
            .dedicated(dedicated_twin())
            .build()
            .unwrap_err();
        match &err {
            SqlxError::Invalid { field, rule } => {
                assert_eq!(*field, "connection");
                assert!(rule.contains("shard eu-9"), "{rule}");
            }
            other => panic!("expected invalid connection, got {other:?}"),
        }
        shown.push(format!("{err} {err:?}"));
    }
    for text in shown {
        assert!(!text.contains("s3cret"), "{text}");
    }
}

/// A column the source has and the target lacks would be dropped by the
/// copy: refused, naming the table and the column, with nothing written.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_column_missing_at_the_target_is_refused_not_dropped() {
    let url = pg::url();
    let (db_a, url_a) = pg::scratch_database(&url, "move_col_a").await;
    let (db_b, url_b) = pg::scratch_database(&url, "move_col_b").await;
    let m = schema_shards(&url_a, &url_b).await;
    let tenant = unique_tenant("acme");
    let source = located(&m, plan(&tenant, Isolation::Dedicated, "pg-a"));
    let target = located(&m, plan(&tenant, Isolation::Dedicated, "pg-b"));
    let name = m.dedicated_name(&source.tenant_id).unwrap();
    ready(&m, &source).await;
    write_work(&url_a, &name).await;
    pg::exec(
        &url_a,
        format!("ALTER TABLE \"{name}\".tasks ADD COLUMN estimate INTEGER DEFAULT 3"),
    )
    .await;
    m.provision(&target).await.unwrap();
    m.migrate(&target).await.unwrap();

    let err = m.copy_tenant(&source, &target).await.unwrap_err();
    match &err {
        Error::InvalidInput { field, rule } => {
            assert_eq!(*field, "move");
            assert!(
                rule.contains("table tasks") && rule.contains("estimate"),
                "{rule}"
            );
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert_eq!(
        pg::scalar(&url_b, format!("SELECT COUNT(*) FROM \"{name}\".roles")).await,
        0,
        "nothing copied"
    );
    pg::drop_database(&url, &db_a).await;
    pg::drop_database(&url, &db_b).await;
}
