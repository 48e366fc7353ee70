//! The store conformance suite on PostgresStore against a real server
//! (`PROVISIONING_TEST_POSTGRES_URL`), each test in a schema of its own, plus
//! what only a shared server can show: schemas that stay apart, concurrent
//! writers from separate pools, and passwords that never print.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pg_store;

use std::sync::Arc;

use provisioning_core::Entity;
use provisioning_core::testing::{store_conformance, unique_tenant};
use provisioning_core::{
    Error, EventKind, JournalEntry, JournalRecord, NewEvent, RunId, SagaJournal, SubmitOutcome,
    TenantEvent, TenantFilter, TenantState, TenantStore,
};
use provisioning_sqlx::PostgresStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection};

use pg_store::{create, table_exists, with_schema, with_schemas, with_store};

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn postgres_store_conforms_twice_in_a_row() {
    with_schema("conform", |url, schema| async move {
        let store = Arc::new(
            PostgresStore::connect_to_schema(&url, &schema)
                .await
                .unwrap(),
        );
        assert_eq!(store.schema(), schema);
        store_conformance(store.clone()).await;
        // Every check uses fresh ids, so a store holding data passes again.
        store_conformance(store).await;
        // The tables and the migration ledger live in the store's schema.
        assert!(table_exists(&url, &schema, "tenants").await);
        assert!(table_exists(&url, &schema, "_sqlx_migrations").await);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_store_on_a_pool_of_yours_conforms_and_reopening_keeps_data() {
    with_schema("pool", |url, schema| async move {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap();
        let store = Arc::new(
            PostgresStore::connect_with(pool.clone(), &schema)
                .await
                .unwrap(),
        );
        store_conformance(store.clone()).await;
        let before = store.list_tenants(&TenantFilter::all()).await.unwrap();
        assert!(!before.is_empty());

        // Opening the same schema again re-runs no migration and sees the data.
        let again = PostgresStore::connect_with(pool, &schema).await.unwrap();
        assert_eq!(
            again.list_tenants(&TenantFilter::all()).await.unwrap(),
            before
        );
        // The store never changed the pool's connections: unqualified names
        // still resolve through the default search_path, not the store's schema.
        let path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(again.pool())
            .await
            .unwrap();
        assert!(!path.contains(&schema), "{path}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn two_schemas_in_one_database_share_nothing() {
    with_schemas("apart", 2, |url, schemas| async move {
        let a = PostgresStore::connect_to_schema(&url, &schemas[0])
            .await
            .unwrap();
        let b = PostgresStore::connect_to_schema(&url, &schemas[1])
            .await
            .unwrap();
        let tenant = unique_tenant("apart");
        let submission = create(&tenant);
        let request_id = submission.request.request_id;
        assert_eq!(a.submit(submission).await.unwrap(), SubmitOutcome::Accepted);
        let run = RunId::new();
        let started = JournalEntry::RunStarted {
            workflow: "w".into(),
            steps: vec!["a".into()],
            context: serde_json::json!({}),
        };
        a.append(JournalRecord::new(run, 0, started.clone()))
            .await
            .unwrap();

        assert!(b.tenant(&tenant).await.unwrap().is_none());
        assert!(b.request(request_id).await.unwrap().is_none());
        assert!(b.tenant_events(&tenant).await.unwrap().is_empty());
        assert!(b.unfinished_requests().await.unwrap().is_empty());
        assert!(
            b.undelivered_events("billing", 100)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(b.load(run).await.unwrap().is_empty());
        assert!(b.unfinished_runs().await.unwrap().is_empty());
        assert!(
            b.claim_requests("w", std::time::Duration::from_secs(60), 100)
                .await
                .unwrap()
                .is_empty()
        );
        // Ids are per schema: the same tenant, request and run are new in b.
        assert_eq!(
            b.submit(create(&tenant)).await.unwrap(),
            SubmitOutcome::Accepted
        );
        b.append(JournalRecord::new(run, 0, started)).await.unwrap();
        assert_eq!(a.tenant_events(&tenant).await.unwrap().len(), 1);
        assert_eq!(a.unfinished_requests().await.unwrap().len(), 1);
        // Each schema keeps its own migration ledger.
        for schema in &schemas {
            assert!(table_exists(&url, schema, "_sqlx_migrations").await);
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn writers_on_separate_pools_race_and_exactly_one_wins() {
    with_schema("race", |url, schema| async move {
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(
                PostgresStore::connect_to_schema(&url, &schema)
                    .await
                    .unwrap(),
            );
        }

        // One request id from four processes, four times each.
        let tenant = unique_tenant("race");
        let submission = create(&tenant);
        let submits = stores
            .iter()
            .flat_map(|s| (0..4).map(|_| s.submit(submission.clone())));
        let outcomes = futures_util::future::join_all(submits).await;
        let accepted = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(SubmitOutcome::Accepted)))
            .count();
        assert_eq!(accepted, 1, "{outcomes:?}");
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

        // One expected version from every store: one update, gapless events.
        let record = stores[0].tenant(&tenant).await.unwrap().unwrap();
        let request_id = record.request_id;
        let updates = stores.iter().map(|s| {
            let mut next = record.clone();
            next.state = TenantState::Validating;
            let event = NewEvent::new(
                EventKind::Other("Validated".into()),
                request_id,
                serde_json::json!({}),
            );
            s.update_tenant(next, record.version, vec![event.clone(), event])
        });
        let outcomes = futures_util::future::join_all(updates).await;
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
        for outcome in &outcomes {
            if let Err(e) = outcome {
                assert!(
                    matches!(
                        e,
                        Error::Conflict {
                            kind: Entity::Tenant,
                            ..
                        }
                    ),
                    "{e}"
                );
            }
        }
        let sequences: Vec<u64> = stores[1]
            .tenant_events(&tenant)
            .await
            .unwrap()
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(sequences, [1, 2, 3]);

        // One journal position from every store: one append.
        let run = RunId::new();
        let started = JournalEntry::RunStarted {
            workflow: "w".into(),
            steps: vec!["a".into()],
            context: serde_json::json!({}),
        };
        stores[0]
            .append(JournalRecord::new(run, 0, started))
            .await
            .unwrap();
        let appends = stores.iter().map(|s| {
            s.append(JournalRecord::new(
                run,
                1,
                JournalEntry::StepStarted {
                    step: "a".into(),
                    index: 0,
                    attempt: 1,
                },
            ))
        });
        let outcomes = futures_util::future::join_all(appends).await;
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
        assert!(
            outcomes.iter().all(|o| o.as_ref().is_ok()
                || matches!(
                    o,
                    Err(Error::Conflict {
                        kind: Entity::Run,
                        ..
                    })
                )),
            "{outcomes:?}"
        );
        assert_eq!(stores[3].load(run).await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn an_update_numbers_each_event_body_like_its_row() {
    with_store("numbering", |_, schema, store| async move {
        let tenant = unique_tenant("numbering");
        store.submit(create(&tenant)).await.unwrap();
        let record = store.tenant(&tenant).await.unwrap().unwrap();
        let events: Vec<NewEvent> = (0..3)
            .map(|n| {
                NewEvent::new(
                    EventKind::Other(format!("E{n}")),
                    record.request_id,
                    serde_json::json!({ "n": n }),
                )
            })
            .collect();
        let stored = store
            .update_tenant(record.clone(), 1, events.clone())
            .await
            .unwrap();
        assert_eq!(stored.version, 2);

        // Read back, each body is the stored form of its event at its place.
        let read = store.tenant_events(&tenant).await.unwrap();
        assert_eq!(read.len(), 4);
        for (i, (body, event)) in read[1..].iter().zip(events).enumerate() {
            let expected = TenantEvent::stored(tenant.clone(), i as u64 + 2, body.at, event);
            assert_eq!(body, &expected);
        }
        // And the sequence in each body is the row's.
        let pairs: Vec<(i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT sequence, (event->>'sequence')::bigint FROM \"{schema}\".events \
             WHERE tenant_id = $1 ORDER BY sequence"
        )))
        .bind(tenant.as_str())
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(pairs, [(1, 1), (2, 2), (3, 3), (4, 4)]);

        // Without events, the version moves and no event is written.
        let stored = store.update_tenant(stored, 2, vec![]).await.unwrap();
        assert_eq!(stored.version, 3);
        // A stale version with events: the same conflict as ever, nothing written.
        let event = NewEvent::new(
            EventKind::Other("late".into()),
            record.request_id,
            serde_json::json!({}),
        );
        let err = store
            .update_tenant(record, 2, vec![event])
            .await
            .unwrap_err();
        match &err {
            Error::Conflict { kind, reason, .. } => {
                assert_eq!(
                    (*kind, reason.as_str()),
                    (
                        provisioning_core::Entity::Tenant,
                        "version 2 expected, 3 stored"
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.tenant_events(&tenant).await.unwrap().len(), 4);
        assert_eq!(store.tenant(&tenant).await.unwrap().unwrap().version, 3);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn a_taken_tenant_id_leaves_no_request_even_under_a_race() {
    with_store("taken", |_, schema, store| async move {
        let requests_of = |tenant: String| {
            let (pool, schema) = (store.pool().clone(), schema.clone());
            async move {
                sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
                    "SELECT count(*) FROM \"{schema}\".requests WHERE tenant_id = $1"
                )))
                .bind(tenant)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };

        let tenant = unique_tenant("taken");
        store.submit(create(&tenant)).await.unwrap();
        let other = create(&tenant);
        let other_id = other.request.request_id;
        let err = store.submit(other).await.unwrap_err();
        match &err {
            Error::Conflict { kind, reason, .. } => assert_eq!(
                (*kind, reason.as_str()),
                (
                    provisioning_core::Entity::Tenant,
                    "tenant exists (state requested)"
                )
            ),
            other => panic!("{other:?}"),
        }
        assert!(store.request(other_id).await.unwrap().is_none());
        assert_eq!(requests_of(tenant.to_string()).await, 1);

        // Eight requests for one new tenant at once: the losers wait on the
        // tenant's key, then conflict and keep no request row.
        let tenant = unique_tenant("taken");
        let submits = (0..8).map(|_| store.submit(create(&tenant)));
        let outcomes = futures_util::future::join_all(submits).await;
        let accepted = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(SubmitOutcome::Accepted)))
            .count();
        assert_eq!(accepted, 1, "{outcomes:?}");
        assert!(
            outcomes.iter().all(|o| o.is_ok()
                || matches!(
                    o,
                    Err(Error::Conflict {
                        kind: Entity::Tenant,
                        ..
                    })
                )),
            "{outcomes:?}"
        );
        assert_eq!(requests_of(tenant.to_string()).await, 1);
        assert_eq!(store.tenant_events(&tenant).await.unwrap().len(), 1);
    })
    .await;
}

/// Without a server: a URL that does not parse, and a server that is down.
#[tokio::test]
async fn errors_never_show_the_password() {
    let err = PostgresStore::connect("mysql://app:hunter2@db/main")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { field: "url", .. }),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    // (A pool of ours with a short timeout: sqlx retries a refused
    // connection until the pool's acquire timeout, 30 s by default.)
    let down = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(300))
        .connect_lazy("postgres://app:hunter2@127.0.0.1:1/main")
        .unwrap();
    let err = PostgresStore::connect_with(down, "provisioning")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "a refused connection may heal: {err:?}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    let err = PostgresStore::connect_to_schema("postgres://127.0.0.1/x", "Bad-Name")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "schema",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn debug_never_shows_the_password() {
    with_schema("debug", |url, schema| async move {
        // The test server trusts local connections, so a password it does not
        // check still connects; a URL that already carries one keeps it.
        let (url, password) = with_password(&url, "s3cret-not-shown");
        let store = PostgresStore::connect_to_schema(&url, &schema)
            .await
            .unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains(&password), "{shown}");
        assert!(shown.contains("***") && shown.contains(&schema), "{shown}");
    })
    .await;
}

/// `url` with a password in its user info, and that password.
fn with_password(url: &str, fallback: &str) -> (String, String) {
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority = rest.split(['/', '?']).next().unwrap();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        return (url.to_owned(), password.to_owned());
    }
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = &rest[authority.len()..];
    let user = options.get_username();
    (
        format!("{scheme}://{user}:{fallback}@{host}{tail}"),
        fallback.to_owned(),
    )
}

/// The pools ping only connections idle for a while before handing them out:
/// connections the server ended while idle are replaced, not returned as
/// errors.
#[tokio::test]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn connections_ended_by_the_server_while_idle_are_replaced() {
    with_store("ended", |url, schema, store| async move {
        let tenant = unique_tenant("ended");
        assert!(store.tenant(&tenant).await.unwrap().is_none());

        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND strpos(query, $1) > 0",
        )
        .bind(&schema)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(!ended.is_empty() && ended.iter().all(|e| *e), "{ended:?}");

        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        for _ in 0..3 {
            assert!(store.tenant(&tenant).await.unwrap().is_none());
        }
    })
    .await;
}
