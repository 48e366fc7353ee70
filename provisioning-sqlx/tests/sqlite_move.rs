//! SQLite copies for moves: a shared tenant's rows into a file of its own
//! and back, compared table by table; a tampered copy is caught; a copy that
//! would reuse another tenant's keys is refused with nothing written.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use provisioning_core::{Error, Isolation, Placement, TenantSchemaManager};
use provisioning_sqlx::SqliteSchemaManager;

async fn manager(dir: &std::path::Path) -> SqliteSchemaManager {
    SqliteSchemaManager::builder()
        .root(dir)
        .shared(schema("sqlite-shared", false).await)
        .dedicated(schema("sqlite", false).await)
        .build()
        .unwrap()
}

async fn ready(m: &SqliteSchemaManager, p: &Placement, seed: bool) {
    m.provision(p).await.unwrap();
    m.migrate(p).await.unwrap();
    if seed {
        m.seed(p).await.unwrap();
    }
}

#[tokio::test]
async fn shared_to_dedicated_and_back_copies_every_row_and_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let shared = plan("acme", Isolation::Shared, "eu-shared-1");
    let other = plan("other", Isolation::Shared, "eu-shared-1");
    let dedicated = plan("acme", Isolation::Dedicated, "eu-dedicated-1");
    ready(&m, &shared, true).await;
    ready(&m, &other, true).await;
    let mut conn = open_sqlite(&m.database_path(&shared)).await;
    sqlx::raw_sql(
        "INSERT INTO projects (tenant_id, name, slug) VALUES ('acme', 'Launch', 'launch');
         INSERT INTO tasks (tenant_id, project_id, title) SELECT 'acme', id, 'it''s ✓' FROM projects WHERE tenant_id = 'acme';",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    ready(&m, &dedicated, false).await;
    let rows = m.copy_tenant(&shared, &dedicated).await.unwrap();
    // Roles, user and grant of the seed; the project and task; the ledger row.
    assert_eq!(rows, 3 + 1 + 1 + 1 + 1 + 1);
    let compared = m.compare_tenant(&shared, &dedicated).await.unwrap();
    assert_eq!(compared.len(), 10);
    assert!(compared.iter().all(|t| t.matches()), "{compared:?}");
    let tasks = compared.iter().find(|t| t.table == "tasks").unwrap();
    assert_eq!((tasks.source_rows, tasks.target_rows), (1, 1));
    // The target counts as seeded with its own schema's seed: nothing
    // pending, and seeding again is no conflict of checksums.
    assert!(
        m.preview(&dedicated)
            .await
            .unwrap()
            .pending_seeds
            .is_empty()
    );
    assert!(m.seed(&dedicated).await.unwrap().is_empty());

    // A row changed at the target is caught, table named.
    let mut target = open_sqlite(&m.database_path(&dedicated)).await;
    sqlx::query("UPDATE tasks SET title = 'changed'")
        .execute(&mut target)
        .await
        .unwrap();
    let compared = m.compare_tenant(&shared, &dedicated).await.unwrap();
    let bad: Vec<_> = compared
        .iter()
        .filter(|t| !t.matches())
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(bad, ["tasks"]);
    // Copying again replaces, never merges.
    m.copy_tenant(&shared, &dedicated).await.unwrap();
    assert!(
        m.compare_tenant(&shared, &dedicated)
            .await
            .unwrap()
            .iter()
            .all(|t| t.matches())
    );

    // Back: acme's rows leave the shared database, then return from its file.
    m.drop_tenant(&shared, provisioning_core::DropReason::Delete)
        .await
        .unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) FROM tasks WHERE tenant_id = ?1",
            "acme"
        )
        .await,
        0
    );
    m.copy_tenant(&dedicated, &shared).await.unwrap();
    assert!(
        m.compare_tenant(&dedicated, &shared)
            .await
            .unwrap()
            .iter()
            .all(|t| t.matches())
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) FROM tasks WHERE tenant_id = ?1",
            "acme"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) FROM roles WHERE tenant_id = ?1",
            "other"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn a_copy_that_would_reuse_another_tenants_keys_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let dedicated = plan("acme", Isolation::Dedicated, "eu-dedicated-1");
    let squatter = plan("squatter", Isolation::Shared, "eu-shared-1");
    let shared = plan("acme", Isolation::Shared, "eu-shared-1");
    ready(&m, &dedicated, true).await;
    ready(&m, &squatter, true).await; // its roles take ids 1..3, as acme's do
    let err = m.copy_tenant(&dedicated, &shared).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("table roles"), "{err}");
    let mut conn = open_sqlite(&m.database_path(&squatter)).await;
    for table in [
        "SELECT COUNT(*) FROM roles WHERE tenant_id = ?1",
        "SELECT COUNT(*) FROM _tenant_seeds WHERE tenant_id = ?1",
    ] {
        assert_eq!(count(&mut conn, table, "acme").await, 0, "{table}");
    }
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) FROM roles WHERE tenant_id = ?1",
            "squatter"
        )
        .await,
        3
    );
    // The same file as source and target is refused too.
    let err = m.copy_tenant(&shared, &shared).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "move", .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_table_without_tenant_id_in_a_shared_file_is_refused_and_left_alone() {
    // A table every tenant of the shared file reads (no `tenant_id`),
    // declared as a tenant table by mistake: copying into the shared file
    // would clear it for everyone, so the copy is refused before any write.
    let dir = tempfile::tempdir().unwrap();
    let mut tables: Vec<&str> = tenant_tables();
    tables.insert(0, "countries");
    let m = SqliteSchemaManager::builder()
        .root(dir.path())
        .shared(
            schema::<sqlx::SqliteConnection>("sqlite-shared", false)
                .await
                .tenant_tables(tables.clone()),
        )
        .dedicated(
            schema::<sqlx::SqliteConnection>("sqlite", false)
                .await
                .tenant_tables(tables),
        )
        .build()
        .unwrap();
    let dedicated = plan("acme", Isolation::Dedicated, "eu-dedicated-1");
    let other = plan("other", Isolation::Shared, "eu-shared-1");
    let shared = plan("acme", Isolation::Shared, "eu-shared-1");
    ready(&m, &dedicated, true).await;
    ready(&m, &other, true).await;
    for (p, code) in [(&dedicated, "de"), (&other, "fr")] {
        let mut conn = open_sqlite(&m.database_path(p)).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE countries (code TEXT PRIMARY KEY); INSERT INTO countries VALUES ('{code}');"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }

    let err = m.copy_tenant(&dedicated, &shared).await.unwrap_err();
    match &err {
        Error::InvalidInput { field, rule } => {
            assert_eq!(*field, "move");
            assert!(rule.contains("table countries"), "{rule}");
            assert!(rule.contains("target database is shared"), "{rule}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    let mut conn = open_sqlite(&m.database_path(&other)).await;
    let codes: Vec<String> = sqlx::query_scalar("SELECT code FROM countries")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(codes, ["fr"]);
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) FROM roles WHERE tenant_id = ?1",
            "acme"
        )
        .await,
        0
    );
    // Out of the shared file the same table would take the other tenant's rows.
    let back = plan("other", Isolation::Dedicated, "eu-dedicated-1");
    ready(&m, &back, false).await;
    let mut conn = open_sqlite(&m.database_path(&back)).await;
    sqlx::raw_sql("CREATE TABLE countries (code TEXT PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = m.copy_tenant(&other, &back).await.unwrap_err();
    assert!(
        err.to_string().contains("source database is shared"),
        "{err}"
    );
}
