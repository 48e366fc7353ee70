//! Dedicated SQLite: a file per tenant, created with a marker, removed whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use provisioning_core::{
    DatabaseOutcome, DropReason, Entity, Error, Isolation, TenantSchemaManager,
};
use provisioning_sqlx::SqliteSchemaManager;

async fn manager(root: &std::path::Path) -> SqliteSchemaManager {
    SqliteSchemaManager::builder()
        .root(root)
        .dedicated(schema("sqlite", false).await)
        .build()
        .unwrap()
}

fn sidecars(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    ["-wal", "-shm", "-journal", ".creating"]
        .iter()
        .map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            p.into()
        })
        .collect()
}

#[tokio::test]
async fn creates_migrates_and_seeds_a_file_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let path = dir.path().join("eu-west/eu-1/acme.sqlite");
    assert_eq!(m.database_path(&acme), path);

    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Created);
    assert!(path.exists());
    assert_eq!(m.migrate(&acme).await.unwrap().len(), 10);
    assert_eq!(m.seed(&acme).await.unwrap().len(), 1);
    // Everything again: nothing more happens, and it is still ours.
    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Created);
    assert!(m.migrate(&acme).await.unwrap().is_empty());
    assert!(m.seed(&acme).await.unwrap().is_empty());

    let mut conn = open_sqlite(&path).await;
    let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let email: String = sqlx::query_scalar("SELECT email FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(roles, 3);
    assert_eq!(email, "admin@acme.example");
    assert_eq!(journal, "wal");
    drop(conn);

    // A second tenant on the same shard gets its own file.
    let globex = plan("globex", Isolation::Dedicated, "eu-1");
    m.provision(&globex).await.unwrap();
    assert!(dir.path().join("eu-west/eu-1/globex.sqlite").exists());
}

#[tokio::test]
async fn delete_removes_the_file_with_wal_and_shm() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let path = m.database_path(&acme);
    m.provision(&acme).await.unwrap();
    m.migrate(&acme).await.unwrap();
    m.seed(&acme).await.unwrap();
    // Keep a reader open so that -wal and -shm exist when the tenant is deleted.
    let mut reader = open_sqlite(&path).await;
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert!(
        sidecars(&path)[0].exists() && sidecars(&path)[1].exists(),
        "-wal and -shm exist"
    );
    drop(reader);

    m.drop_tenant(&acme, DropReason::Delete).await.unwrap();
    assert!(!path.exists());
    for sidecar in sidecars(&path) {
        assert!(!sidecar.exists(), "{} left behind", sidecar.display());
    }
    m.drop_tenant(&acme, DropReason::Delete).await.unwrap(); // already gone: fine
}

#[tokio::test]
async fn a_crash_while_creating_leaves_nothing_a_rerun_cannot_finish() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let path = m.database_path(&acme);
    // What a crash during creation leaves: a half-built staging file.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let staging = &sidecars(&path)[3];
    std::fs::write(staging, b"half written").unwrap();

    // The re-run creates the database (not adopts: the staging file is ours).
    assert_eq!(m.provision(&acme).await.unwrap(), DatabaseOutcome::Created);
    assert!(!staging.exists());
    // A compensation after a crash removes a staging file too.
    std::fs::write(staging, b"half written").unwrap();
    m.drop_tenant(&acme, DropReason::Compensation)
        .await
        .unwrap();
    assert!(!staging.exists() && !path.exists());
}

#[tokio::test]
async fn migrate_before_provision_is_not_found_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let err = m.migrate(&acme).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                kind: Entity::TenantDatabase,
                ..
            }
        ),
        "{err}"
    );
    assert!(!m.database_path(&acme).exists());
}

#[tokio::test]
async fn the_shard_map_connection_is_where_data_lives_and_the_placement_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let build = |template: &str| {
        let template = template.to_owned();
        let dir = dir.path().to_owned();
        async move {
            SqliteSchemaManager::builder()
                .root(&dir)
                .shard("eu-1".parse().unwrap(), template)
                .dedicated(schema("sqlite", false).await)
                .build()
                .unwrap()
        }
    };
    let m = build("sqlite:fast-disk/{region}/{tenant}.sqlite").await;
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    let located = m.locate(&acme).unwrap().unwrap();
    let expected = dir.path().join("fast-disk/eu-west/acme.sqlite");
    assert_eq!(located, expected.display().to_string());
    let acme = acme.with_database(Some(located));
    m.provision(&acme).await.unwrap();
    m.migrate(&acme).await.unwrap();
    assert!(expected.exists());

    // The map changes: new tenants go to the new place, the placed one
    // stays where its placement says.
    let m = build("sqlite:elsewhere/{tenant}.sqlite").await;
    assert!(m.preview(&acme).await.unwrap().exists);
    assert!(m.migrate(&acme).await.unwrap().is_empty());
    let beta = plan("beta", Isolation::Dedicated, "eu-1");
    assert_eq!(
        m.locate(&beta).unwrap().unwrap(),
        dir.path()
            .join("elsewhere/beta.sqlite")
            .display()
            .to_string()
    );

    // A dedicated tenant on a template without {tenant} would share a file.
    let m = build("sqlite:one.sqlite").await;
    let err = m.locate(&beta).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "connection",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("{tenant}"), "{err}");

    // A URL of another database is refused when the manager is built.
    let err = SqliteSchemaManager::builder()
        .root(dir.path())
        .shard("eu-1".parse().unwrap(), "postgres://app:pw@db/t")
        .dedicated(schema("sqlite", false).await)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("connection"), "{err}");
    assert!(!err.to_string().contains("pw@"), "{err}");
}

#[tokio::test]
async fn builder_names_what_is_missing() {
    let err = SqliteSchemaManager::builder().build().unwrap_err();
    assert_eq!(err.to_string(), "missing root: call `root` on the builder");
    let err = SqliteSchemaManager::builder()
        .root("/tmp/x")
        .build()
        .unwrap_err();
    assert!(err.to_string().starts_with("missing schema"), "{err}");
    let shared_without_tables =
        provisioning_sqlx::TenantSchema::new(migrator("sqlite-shared", false).await);
    let err = SqliteSchemaManager::builder()
        .root("/tmp/x")
        .shared(shared_without_tables)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("tenant_tables"), "{err}");
}
