//! Leases on PostgresStore with several workers, each on a pool of its own as
//! separate orchestrator processes would be: every request goes to exactly one
//! worker, and an expired lease passes to another while its old holder can no
//! longer renew it.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pg_store;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use provisioning_core::testing::unique_tenant;
use provisioning_core::{RequestId, RequestRecord, TenantStore};
use provisioning_sqlx::PostgresStore;

use pg_store::{create, with_schema};

const REQUESTS: usize = 200;
const WORKERS: usize = 4;

/// Submits `n` create requests; returns their ids.
async fn submit_requests(store: &PostgresStore, n: usize) -> Vec<RequestId> {
    let submissions: Vec<_> = (0..n).map(|_| create(&unique_tenant("lease"))).collect();
    let ids = submissions.iter().map(|s| s.request.request_id).collect();
    let submits = submissions.into_iter().map(|s| store.submit(s));
    for outcome in futures_util::future::join_all(submits).await {
        outcome.unwrap();
    }
    ids
}

async fn workers(url: &str, schema: &str) -> Vec<PostgresStore> {
    let mut stores = Vec::new();
    for _ in 0..WORKERS {
        stores.push(PostgresStore::connect_to_schema(url, schema).await.unwrap());
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn concurrent_workers_claim_every_request_exactly_once() {
    with_schema("claims", |url, schema| async move {
        let stores = workers(&url, &schema).await;
        let submitted = submit_requests(&stores[0], REQUESTS).await;

        // Every worker claims small batches until nothing is left for it.
        let mut tasks = Vec::new();
        for (i, store) in stores.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let worker = format!("worker-{i}");
                let mut mine: Vec<RequestRecord> = Vec::new();
                loop {
                    let batch = store
                        .claim_requests(&worker, Duration::from_secs(300), 7)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    assert!(batch.len() <= 7);
                    let order: Vec<_> = batch
                        .iter()
                        .map(|r| (r.submitted_at, r.request_id))
                        .collect();
                    assert!(order.is_sorted(), "a batch comes oldest first");
                    mine.extend(batch);
                }
                (worker, store, mine)
            }));
        }
        let mut owner: HashMap<RequestId, String> = HashMap::new();
        let mut per_worker = Vec::new();
        let mut stores = Vec::new();
        for task in tasks {
            let (worker, store, mine) = task.await.unwrap();
            per_worker.push(mine.len());
            for request in mine {
                let previous = owner.insert(request.request_id, worker.clone());
                assert!(
                    previous.is_none(),
                    "{} claimed by {previous:?} and {worker}",
                    request.request_id
                );
            }
            stores.push((worker, store));
        }
        assert_eq!(owner.len(), REQUESTS, "claims per worker: {per_worker:?}");
        assert_eq!(
            owner.keys().copied().collect::<HashSet<_>>(),
            submitted.iter().copied().collect::<HashSet<_>>()
        );

        // The database agrees: each holder can renew exactly its own leases.
        for (worker, store) in &stores {
            for request_id in submitted.iter().take(40) {
                let renewed = store
                    .renew_lease(worker, *request_id, Duration::from_secs(300))
                    .await
                    .unwrap();
                assert_eq!(
                    renewed,
                    owner[request_id] == *worker,
                    "{worker} {request_id}"
                );
            }
        }
        // Nothing is left to claim while the leases run.
        let (worker, store) = &stores[0];
        assert!(
            store
                .claim_requests(worker, Duration::from_secs(300), REQUESTS)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PROVISIONING_TEST_POSTGRES_URL (a PostgreSQL server)"]
async fn an_expired_lease_passes_on_and_its_old_holder_cannot_renew() {
    with_schema("expiry", |url, schema| async move {
        let stores = workers(&url, &schema).await;
        let submitted = submit_requests(&stores[0], REQUESTS).await;
        let (a, b, c) = (&stores[0], &stores[1], &stores[2]);
        let short = Duration::from_millis(800);
        let long = Duration::from_secs(300);

        let claimed = a.claim_requests("a", short, REQUESTS).await.unwrap();
        assert_eq!(claimed.len(), REQUESTS);
        assert!(
            b.claim_requests("b", long, REQUESTS)
                .await
                .unwrap()
                .is_empty(),
            "held by a"
        );
        // A live holder may renew; nobody else may.
        assert!(a.renew_lease("a", submitted[0], short).await.unwrap());
        assert!(!b.renew_lease("b", submitted[0], long).await.unwrap());

        // a stops renewing (as a dead worker would): its leases expire.
        tokio::time::sleep(short + Duration::from_millis(400)).await;
        let taken = b.claim_requests("b", long, REQUESTS).await.unwrap();
        assert_eq!(taken.len(), REQUESTS, "every expired lease passes on");
        for request_id in &submitted {
            assert!(
                !a.renew_lease("a", *request_id, long).await.unwrap(),
                "the old holder must stop"
            );
        }
        // The old holder's release does not free b's lease.
        a.release_lease("a", submitted[0]).await.unwrap();
        assert!(
            c.claim_requests("c", long, REQUESTS)
                .await
                .unwrap()
                .is_empty()
        );
        // b's release does, for that request only.
        b.release_lease("b", submitted[0]).await.unwrap();
        let freed: Vec<RequestId> = c
            .claim_requests("c", long, REQUESTS)
            .await
            .unwrap()
            .iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(freed, [submitted[0]]);
        assert!(b.renew_lease("b", submitted[1], long).await.unwrap());
    })
    .await;
}
