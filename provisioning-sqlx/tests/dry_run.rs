//! `plan` is a read-only dry run: it reports and creates nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use provisioning_core::{Isolation, SeedInfo, TenantSchemaManager};
use provisioning_sqlx::SqliteSchemaManager;

fn tree(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

async fn manager(root: &std::path::Path) -> SqliteSchemaManager {
    SqliteSchemaManager::builder()
        .root(root)
        .dedicated(schema("sqlite", false).await)
        .shared(schema("sqlite-shared", false).await)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_dry_run_on_a_new_tenant_lists_everything_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    for isolation in [Isolation::Dedicated, Isolation::Shared] {
        let p = plan("acme", isolation, "eu-1");
        let dry = m.preview(&p).await.unwrap();
        assert!(!dry.exists && dry.will_create, "{isolation}");
        assert_eq!(dry.location, m.database_path(&p).display().to_string());
        assert_eq!(
            versions(&dry.pending_migrations),
            (1..=10).collect::<Vec<_>>()
        );
        assert_eq!(dry.pending_seeds, [SeedInfo::new("workload-seed", 1)]);
    }
    assert!(
        tree(dir.path()).is_empty(),
        "created: {:?}",
        tree(dir.path())
    );
}

#[tokio::test]
async fn a_dry_run_on_an_existing_tenant_lists_what_is_pending_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path()).await;
    let acme = plan("acme", Isolation::Dedicated, "eu-1");
    m.provision(&acme).await.unwrap();
    // Provisioned, never migrated: no ledger yet, and the dry run makes none.
    let dry = m.preview(&acme).await.unwrap();
    assert!(dry.exists && !dry.will_create);
    assert_eq!(dry.pending_migrations.len(), 10);
    let path = m.database_path(&acme);
    let mut conn = open_sqlite(&path).await;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(tables, ["_tenant_owner"], "the dry run created no ledger");
    drop(conn);

    m.migrate(&acme).await.unwrap();
    let dry = m.preview(&acme).await.unwrap();
    assert!(dry.pending_migrations.is_empty());
    assert_eq!(dry.pending_seeds.len(), 1);
    let before = std::fs::metadata(&path).unwrap().len();
    let files = tree(dir.path());
    m.preview(&acme).await.unwrap();
    assert_eq!(tree(dir.path()), files);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);

    // A shared shard another tenant created: exists, nothing to create, this
    // tenant's seed still pending.
    let a = plan("globex", Isolation::Shared, "eu-s");
    let b = plan("initech", Isolation::Shared, "eu-s");
    m.provision(&a).await.unwrap();
    m.migrate(&a).await.unwrap();
    m.seed(&a).await.unwrap();
    let dry = m.preview(&b).await.unwrap();
    assert!(dry.exists && !dry.will_create && dry.pending_migrations.is_empty());
    assert_eq!(dry.pending_seeds.len(), 1);
    assert!(m.preview(&a).await.unwrap().pending_seeds.is_empty());
}
