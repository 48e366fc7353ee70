//! Event delivery: per tenant in sequence order, at least once, a failing
//! subscriber retried and never skipped, other tenants not held back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::world::*;
use provisioning_core::*;

/// Records what it receives; fails the first `fail` deliveries for `flaky`.
struct Recorder {
    name: &'static str,
    seen: Mutex<Vec<(String, u64, String)>>,
    flaky: Option<&'static str>,
    fail: Mutex<usize>,
}

impl Recorder {
    fn new(name: &'static str, flaky: Option<&'static str>, fail: usize) -> Arc<Self> {
        Arc::new(Recorder {
            name,
            seen: Mutex::new(Vec::new()),
            flaky,
            fail: Mutex::new(fail),
        })
    }
    fn per_tenant(&self) -> BTreeMap<String, Vec<u64>> {
        let mut map: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (tenant, seq, _) in self.seen.lock().unwrap().iter() {
            map.entry(tenant.clone()).or_default().push(*seq);
        }
        map
    }
}

#[async_trait]
impl EventSubscriber for Recorder {
    fn name(&self) -> &str {
        self.name
    }
    async fn handle(&self, event: &TenantEvent) -> Result<(), BoxError> {
        if self.flaky == Some(event.tenant_id.as_str()) {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err("subscriber down".into());
            }
        }
        self.seen.lock().unwrap().push((
            event.tenant_id.to_string(),
            event.sequence,
            event.kind.to_string(),
        ));
        Ok(())
    }
}

#[tokio::test]
async fn subscribers_get_each_tenants_events_in_order_and_failures_are_retried_not_skipped() {
    let world = World::new();
    let billing = Recorder::new("billing", Some("acme"), 3);
    let identity = Recorder::new("identity", None, 0);
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .subscriber(billing.clone())
        .subscriber(identity.clone())
        .build()
        .unwrap();
    for tenant in ["acme", "globex"] {
        orchestrator
            .create(request(tenant, "free", "eu-west"))
            .await
            .unwrap();
    }
    let acme: TenantId = "acme".parse().unwrap();
    orchestrator.suspend(&acme, RequestId::new()).await.unwrap();

    // Each request delivered once; billing failed acme three times meanwhile.
    let identity_seen = identity.per_tenant();
    assert_eq!(identity_seen["acme"], [1, 2, 3]);
    assert_eq!(identity_seen["globex"], [1, 2]);
    let billing_seen = billing.per_tenant();
    assert_eq!(
        billing_seen["globex"],
        [1, 2],
        "globex is not held back by acme"
    );
    let acme_so_far = billing_seen.get("acme").cloned().unwrap_or_default();
    assert!(
        acme_so_far.len() < 3,
        "acme's events wait behind the failure"
    );

    // Further rounds deliver the rest, in order, none skipped.
    while orchestrator.dispatcher().dispatch_once().await.unwrap() != DispatchReport::default() {}
    assert_eq!(billing.per_tenant()["acme"], [1, 2, 3]);
    let acme_kinds: Vec<String> = billing
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| t == "acme")
        .map(|(_, _, k)| k.clone())
        .collect();
    assert_eq!(
        acme_kinds,
        ["TenantCreated", "TenantProvisioned", "TenantSuspended"]
    );
    // Nothing is delivered twice once acknowledged.
    assert_eq!(identity.per_tenant()["acme"], [1, 2, 3]);
}

#[tokio::test]
async fn each_event_carries_one_tenants_data_only() {
    let world = World::new();
    let orchestrator = world
        .orchestrator(Arc::new(InMemoryStore::new()))
        .build()
        .unwrap();
    for tenant in ["acme", "globex"] {
        orchestrator
            .create(request(tenant, "premium", "eu-west"))
            .await
            .unwrap();
    }
    for tenant in ["acme", "globex"] {
        let events = orchestrator.events(&tenant.parse().unwrap()).await.unwrap();
        for event in events {
            assert_eq!(event.tenant_id.as_str(), tenant);
            let other = if tenant == "acme" { "globex" } else { "acme" };
            assert!(!event.data.to_string().contains(other), "{event:?}");
        }
    }
}
