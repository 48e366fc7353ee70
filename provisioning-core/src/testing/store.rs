//! The store conformance suite: one set of checks that every [`TenantStore`]
//! must pass, so that the in-memory, SQLite and PostgreSQL stores (and yours)
//! cannot drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;

use crate::Entity;
use crate::Error;
use crate::events::{EventKind, NewEvent};
use crate::fleet::{
    FailureLimit, FleetStore, NewRolloutUnit, RolloutCounts, RolloutSettings, RolloutStatus,
    RolloutUnit, UnitResult, UnitStatus,
};
use crate::model::{Isolation, Placement, PlacementDecision, Residency, RolloutId, ShardChoice};
use crate::model::{RequestId, RunId, TenantId, TenantRecord, TenantState};
use crate::saga::{JournalEntry, JournalRecord, RunStatus};
use crate::store::{
    RequestRecord, RequestStatus, Submission, SubmitOutcome, TenantFilter, TenantStore,
};
use crate::traits::MigrationInfo;

/// Runs every check against `store`.
pub async fn store_conformance(store: Arc<dyn TenantStore>) {
    submit_is_atomic_and_idempotent(&*store).await;
    concurrent_submits_accept_exactly_one(&*store).await;
    update_checks_the_version_and_numbers_events(&*store).await;
    requests_finish_and_unfinished_ones_are_listed(&*store).await;
    listing_filters_and_pages(&*store).await;
    outbox_keeps_a_position_per_subscriber_and_tenant(&*store).await;
    journal_positions_are_exclusive_and_status_is_tracked(&*store).await;
    journal_batches_keep_positions_and_status(&*store).await;
    leases_are_exclusive_renewable_and_expire(&*store).await;
    a_submission_is_leased_from_its_first_instant(&*store).await;
    if let Some(fleet) = store.fleet() {
        fleet_conformance(fleet).await;
    }
}

/// Runs every check of a [`FleetStore`] (part of [`store_conformance`] for a
/// store whose [`TenantStore::fleet`] is `Some`).
pub async fn fleet_conformance(fleet: &dyn FleetStore) {
    rollouts_open_once_per_release_and_continue(fleet).await;
    units_are_leased_by_wave_and_settled_by_their_holder(fleet).await;
    concurrent_opens_and_claims_share_one_rollout(fleet).await;
}

fn unit(tenant: &TenantId, status: UnitStatus) -> NewRolloutUnit {
    let placement = Placement::new(
        tenant.clone(),
        PlacementDecision::new(
            "premium".parse().unwrap(),
            Isolation::Dedicated,
            "eu-west".parse().unwrap(),
            Residency::Strict,
            "test",
        ),
        ShardChoice::new("db-1".parse().unwrap(), "eu-west".parse().unwrap(), "test"),
    );
    let note = (status == UnitStatus::Skipped).then(|| "tenant is moving".to_owned());
    NewRolloutUnit {
        key: tenant.to_string(),
        placement,
        tenants: vec![tenant.clone()],
        status,
        note,
    }
}

/// One unfinished roll-out per release: opening it again continues it and
/// adds only new units; the canary wave is the first pending units; status
/// and reason are kept; a completed roll-out makes way for a new one.
pub async fn rollouts_open_once_per_release_and_continue(fleet: &dyn FleetStore) {
    let release = unique_tenant("release").to_string();
    let tenants: Vec<TenantId> = (0..5).map(|_| unique_tenant("fleet")).collect();
    let mut units: Vec<_> = tenants
        .iter()
        .map(|t| unit(t, UnitStatus::Pending))
        .collect();
    units[0] = unit(&tenants[0], UnitStatus::Skipped);
    let settings = RolloutSettings::new(2, FailureLimit::Percent(10));
    let first = fleet
        .open_rollout(&release, &settings, "op-1", units[..4].to_vec())
        .await
        .unwrap();
    assert!(!first.resumed);
    assert_eq!(first.added, 4);
    assert_eq!(first.rollout.status, RolloutStatus::Running);
    assert_eq!(first.rollout.settings, settings);
    assert_eq!(first.rollout.started_by, "op-1");
    let stored = fleet.rollout_units(first.rollout.id).await.unwrap();
    let summary: Vec<(u64, u32, UnitStatus)> =
        stored.iter().map(|u| (u.seq, u.wave, u.status)).collect();
    assert_eq!(
        summary,
        [
            (0, 1, UnitStatus::Skipped),
            (1, 0, UnitStatus::Pending),
            (2, 0, UnitStatus::Pending),
            (3, 1, UnitStatus::Pending),
        ],
        "the canary wave is the first two pending units"
    );
    assert_eq!(stored[0].note.as_deref(), Some("tenant is moving"));
    assert_eq!(stored[1].placement, units[1].placement);
    assert_eq!(stored[1].tenants, [tenants[1].clone()]);

    let again = fleet
        .open_rollout(
            &release,
            &RolloutSettings::new(0, FailureLimit::Unlimited),
            "op-2",
            units.clone(),
        )
        .await
        .unwrap();
    assert!(again.resumed);
    assert_eq!(again.added, 1, "only the new unit is added");
    assert_eq!(again.rollout.id, first.rollout.id);
    assert_eq!(
        again.rollout.settings, settings,
        "the first settings are kept"
    );
    let stored = fleet.rollout_units(first.rollout.id).await.unwrap();
    assert_eq!(stored.len(), 5);
    // A key given twice in one call is one unit, numbered without a gap.
    let twice = fleet
        .open_rollout(
            &release,
            &settings,
            "op-3",
            vec![units[4].clone(), units[4].clone()],
        )
        .await
        .unwrap();
    assert_eq!(twice.added, 0);
    let other = unique_tenant("fleet");
    let dup = unit(&other, UnitStatus::Pending);
    let again = fleet
        .open_rollout(&release, &settings, "op-3", vec![dup.clone(), dup])
        .await
        .unwrap();
    assert_eq!(again.added, 1);
    let stored = fleet.rollout_units(first.rollout.id).await.unwrap();
    assert_eq!(
        stored.iter().map(|u| u.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!((stored[4].seq, stored[4].wave), (4, 1));
    assert_eq!(stored[4].key, tenants[4].to_string());

    fleet
        .set_rollout_status(
            first.rollout.id,
            RolloutStatus::Halted,
            Some("too many".into()),
        )
        .await
        .unwrap();
    let halted = fleet.rollout(first.rollout.id).await.unwrap().unwrap();
    assert_eq!(halted.status, RolloutStatus::Halted);
    assert_eq!(halted.reason.as_deref(), Some("too many"));
    let reopened = fleet
        .open_rollout(&release, &settings, "op-1", vec![])
        .await
        .unwrap();
    assert_eq!(
        reopened.rollout.id, first.rollout.id,
        "a halted roll-out is continued"
    );

    fleet
        .set_rollout_status(first.rollout.id, RolloutStatus::Completed, None)
        .await
        .unwrap();
    let next = fleet
        .open_rollout(&release, &settings, "op-1", units)
        .await
        .unwrap();
    assert!(!next.resumed, "a completed roll-out is not continued");
    assert_ne!(next.rollout.id, first.rollout.id);
    assert_eq!(
        fleet.latest_rollout().await.unwrap().unwrap().id,
        next.rollout.id
    );
    assert!(fleet.rollout(RolloutId::new()).await.unwrap().is_none());
    fleet
        .set_rollout_status(next.rollout.id, RolloutStatus::Completed, None)
        .await
        .unwrap();
}

/// Claims hand out pending units of one wave, each to one worker; expired
/// leases pass on; only the holder settles a unit; failed units come back
/// on a retry.
pub async fn units_are_leased_by_wave_and_settled_by_their_holder(fleet: &dyn FleetStore) {
    use std::time::Duration;
    let release = unique_tenant("release").to_string();
    let tenants: Vec<TenantId> = (0..4).map(|_| unique_tenant("fleet")).collect();
    let units = tenants
        .iter()
        .map(|t| unit(t, UnitStatus::Pending))
        .collect();
    let settings = RolloutSettings::new(1, FailureLimit::Unlimited);
    let id = fleet
        .open_rollout(&release, &settings, "a", units)
        .await
        .unwrap()
        .rollout
        .id;
    let long = Duration::from_secs(60);
    let seqs = |units: Vec<RolloutUnit>| units.iter().map(|u| u.seq).collect::<Vec<_>>();

    let canary = fleet.claim_units(id, 0, "a", long, 10).await.unwrap();
    assert_eq!(seqs(canary.clone()), [0]);
    assert_eq!(canary[0].status, UnitStatus::Running);
    assert_eq!(canary[0].attempts, 1);
    assert_eq!(canary[0].worker.as_deref(), Some("a"));
    assert!(
        fleet
            .claim_units(id, 0, "b", long, 10)
            .await
            .unwrap()
            .is_empty(),
        "held by a"
    );
    assert_eq!(
        seqs(fleet.claim_units(id, 1, "b", long, 2).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        seqs(
            fleet
                .claim_units(id, 1, "c", Duration::from_millis(50), 10)
                .await
                .unwrap()
        ),
        [3]
    );

    let migrated = UnitResult::Migrated {
        applied: vec![MigrationInfo::new(11, "task estimate")],
        seeded: vec![],
    };
    assert!(
        !fleet.finish_unit(id, 0, "b", &migrated).await.unwrap(),
        "not b's"
    );
    assert!(fleet.finish_unit(id, 0, "a", &migrated).await.unwrap());
    assert!(
        fleet
            .finish_unit(id, 1, "b", &UnitResult::Failed("boom".into()))
            .await
            .unwrap()
    );
    fleet.renew_units(id, "b", &[2], long).await.unwrap();

    // c's short lease expires: its unit passes to a, and c can no longer settle it.
    tokio_free_sleep(Duration::from_millis(120)).await;
    let taken = fleet.claim_units(id, 1, "a", long, 10).await.unwrap();
    assert_eq!(
        seqs(taken.clone()),
        [3],
        "b's renewed unit stays b's; c's expired one passes on"
    );
    assert_eq!(taken[0].attempts, 2);
    assert!(!fleet.finish_unit(id, 3, "c", &migrated).await.unwrap());
    let outcomes = [
        (3, UnitResult::Skipped("tenant is deleted".into())),
        (2, migrated.clone()),
    ];
    assert_eq!(
        fleet.finish_units(id, "a", &outcomes).await.unwrap(),
        [true, false],
        "a's unit settled together; b's left to b"
    );
    assert!(fleet.finish_unit(id, 2, "b", &migrated).await.unwrap());
    assert!(
        !fleet.finish_unit(id, 2, "b", &migrated).await.unwrap(),
        "settled once"
    );

    let stored = fleet.rollout_units(id).await.unwrap();
    let statuses: Vec<UnitStatus> = stored.iter().map(|u| u.status).collect();
    use UnitStatus::*;
    assert_eq!(statuses, [Migrated, Failed, Migrated, Skipped]);
    assert_eq!(stored[0].applied, [MigrationInfo::new(11, "task estimate")]);
    assert!(stored[0].finished_at.is_some());
    assert_eq!(stored[1].note.as_deref(), Some("boom"));
    assert_eq!(stored[3].note.as_deref(), Some("tenant is deleted"));
    assert_eq!(RolloutCounts::of(&stored).failed, 1);

    assert_eq!(fleet.retry_failed_units(id).await.unwrap(), 1);
    let again = fleet.claim_units(id, 1, "b", long, 10).await.unwrap();
    assert_eq!(seqs(again.clone()), [1]);
    assert_eq!(again[0].attempts, 2);
    assert!(fleet.finish_unit(id, 1, "b", &migrated).await.unwrap());
    assert!(
        fleet
            .claim_units(id, 1, "b", long, 10)
            .await
            .unwrap()
            .is_empty()
    );
    fleet
        .set_rollout_status(id, RolloutStatus::Completed, None)
        .await
        .unwrap();
}

/// Two processes opening one release at once get one roll-out, and claiming
/// at once never get one unit twice.
pub async fn concurrent_opens_and_claims_share_one_rollout(fleet: &dyn FleetStore) {
    use std::time::Duration;
    let release = unique_tenant("release").to_string();
    let tenants: Vec<TenantId> = (0..40).map(|_| unique_tenant("fleet")).collect();
    let units: Vec<NewRolloutUnit> = tenants
        .iter()
        .map(|t| unit(t, UnitStatus::Pending))
        .collect();
    let settings = RolloutSettings::new(0, FailureLimit::Unlimited);
    let opens = (0..4).map(|i| {
        let units = units.clone();
        let (release, settings) = (&release, &settings);
        async move {
            fleet
                .open_rollout(release, settings, &format!("op-{i}"), units)
                .await
                .unwrap()
        }
    });
    let opened = futures_util::future::join_all(opens).await;
    let id = opened[0].rollout.id;
    assert!(opened.iter().all(|o| o.rollout.id == id), "one roll-out");
    assert_eq!(opened.iter().filter(|o| !o.resumed).count(), 1);
    assert_eq!(
        fleet.rollout_units(id).await.unwrap().len(),
        40,
        "each unit once"
    );

    let claims = (0..4).map(|i| async move {
        let mut mine = Vec::new();
        loop {
            let got = fleet
                .claim_units(id, 1, &format!("w{i}"), Duration::from_secs(60), 3)
                .await
                .unwrap();
            if got.is_empty() {
                return mine;
            }
            mine.extend(got.into_iter().map(|u| u.seq));
        }
    });
    let mut all: Vec<u64> = futures_util::future::join_all(claims).await.concat();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..40).collect::<Vec<u64>>(),
        "every unit claimed exactly once"
    );
    fleet
        .set_rollout_status(id, RolloutStatus::Completed, None)
        .await
        .unwrap();
}

/// A tenant id that no other check or run uses.
pub fn unique_tenant(prefix: &str) -> TenantId {
    let suffix: String = RunId::new().as_uuid().simple().to_string()[20..].to_owned();
    TenantId::parse(format!("{prefix}-{suffix}")).expect("prefix must be a valid id start")
}

/// The submission of a `create-tenant` request for `tenant` (free plan,
/// eu-west, Requested, with its TenantCreated event), as the orchestrator
/// writes one: for tests of a store that need tenants in it.
pub fn create(tenant: &TenantId, request_id: RequestId) -> Submission {
    let request = RequestRecord::new(
        request_id,
        tenant.clone(),
        "create-tenant",
        serde_json::json!({ "tenant": tenant }),
        RunId::from_uuid(*request_id.as_uuid()).unwrap(),
    );
    let record = TenantRecord::new_requested(
        tenant.clone(),
        request_id,
        "free".parse().unwrap(),
        "eu-west".parse().unwrap(),
        BTreeMap::from([("tier".to_owned(), "gold".to_owned())]),
        Utc::now(),
    );
    let event = NewEvent::new(EventKind::TenantCreated, request_id, serde_json::json!({}));
    Submission::create(request, record, event)
}

/// Submit writes request, tenant and first event together; a repeat is a
/// duplicate; another request for the same tenant is a conflict writing nothing.
pub async fn submit_is_atomic_and_idempotent(store: &dyn TenantStore) {
    let tenant = unique_tenant("submit");
    let request_id = RequestId::new();
    let outcome = store.submit(create(&tenant, request_id)).await.unwrap();
    assert_eq!(outcome, SubmitOutcome::Accepted);
    let record = store
        .tenant(&tenant)
        .await
        .unwrap()
        .expect("tenant written");
    assert_eq!(record.state, TenantState::Requested);
    assert_eq!(record.version, 1);
    assert_eq!(record.metadata["tier"], "gold");
    let request = store
        .request(request_id)
        .await
        .unwrap()
        .expect("request written");
    assert_eq!(request.status, RequestStatus::Running);
    assert_eq!(request.tenant_id, tenant);
    let events = store.tenant_events(&tenant).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].sequence, &events[0].kind),
        (1, &EventKind::TenantCreated)
    );

    match store.submit(create(&tenant, request_id)).await.unwrap() {
        SubmitOutcome::Duplicate(existing) => assert_eq!(existing.request_id, request_id),
        other => panic!("a repeated request must be a duplicate, got {other:?}"),
    }
    let other = RequestId::new();
    let err = store.submit(create(&tenant, other)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: Entity::Tenant,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        store.request(other).await.unwrap().is_none(),
        "nothing written on conflict"
    );
    assert_eq!(store.tenant_events(&tenant).await.unwrap().len(), 1);
}

/// Many concurrent submissions of one request id: exactly one is accepted.
pub async fn concurrent_submits_accept_exactly_one(store: &dyn TenantStore) {
    let tenant = unique_tenant("race");
    let request_id = RequestId::new();
    let attempts = (0..16).map(|_| store.submit(create(&tenant, request_id)));
    let outcomes = futures_util::future::join_all(attempts).await;
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(SubmitOutcome::Accepted)))
        .count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.is_ok()), "{outcomes:?}");
    assert_eq!(store.tenant_events(&tenant).await.unwrap().len(), 1);
}

/// Updates check the version, bump it, and append gapless events atomically.
pub async fn update_checks_the_version_and_numbers_events(store: &dyn TenantStore) {
    let tenant = unique_tenant("update");
    let request_id = RequestId::new();
    store.submit(create(&tenant, request_id)).await.unwrap();
    let record = store.tenant(&tenant).await.unwrap().unwrap();

    let mut next = record.clone();
    next.state = TenantState::Validating;
    next.metadata.insert("k".into(), "v".into());
    let events = vec![
        NewEvent::new(
            EventKind::Other("A".into()),
            request_id,
            serde_json::json!({"n": 1}),
        ),
        NewEvent::new(
            EventKind::Other("B".into()),
            request_id,
            serde_json::json!({"n": 2}),
        ),
    ];
    let stored = store.update_tenant(next.clone(), 1, events).await.unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.state, TenantState::Validating);

    // A stale version is a conflict and writes nothing.
    let mut stale = record.clone();
    stale.state = TenantState::Failed;
    let err = store
        .update_tenant(
            stale,
            1,
            vec![NewEvent::new(
                EventKind::Other("C".into()),
                request_id,
                serde_json::json!({}),
            )],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                kind: Entity::Tenant,
                ..
            }
        ),
        "{err}"
    );
    let now = store.tenant(&tenant).await.unwrap().unwrap();
    assert_eq!((now.state, now.version), (TenantState::Validating, 2));
    assert_eq!(now.metadata["k"], "v");

    let events = store.tenant_events(&tenant).await.unwrap();
    let seen: Vec<(u64, String)> = events
        .iter()
        .map(|e| (e.sequence, e.kind.to_string()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "TenantCreated".to_owned()),
            (2, "A".to_owned()),
            (3, "B".to_owned())
        ]
    );
    assert_eq!(events[2].data["n"], 2);
    assert_eq!(events[2].request_id, request_id);

    let missing = unique_tenant("missing");
    let mut ghost = record;
    ghost.tenant_id = missing;
    let err = store.update_tenant(ghost, 1, vec![]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                kind: Entity::Tenant,
                ..
            }
        ),
        "{err}"
    );
}

/// finish_request settles requests; unfinished ones are listed oldest first.
pub async fn requests_finish_and_unfinished_ones_are_listed(store: &dyn TenantStore) {
    let tenant = unique_tenant("finish");
    let first = RequestId::new();
    store.submit(create(&tenant, first)).await.unwrap();
    let second = RequestId::new();
    let request = RequestRecord::new(
        second,
        tenant.clone(),
        "suspend-tenant",
        serde_json::json!({}),
        RunId::from_uuid(*second.as_uuid()).unwrap(),
    );
    store.submit(Submission::request(request)).await.unwrap();
    let pending: Vec<RequestId> = store
        .unfinished_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.tenant_id == tenant)
        .map(|r| r.request_id)
        .collect();
    assert_eq!(pending, [first, second]);

    let failure =
        crate::model::FailureInfo::new("seed", crate::model::FailureKind::Permanent, "broken");
    store
        .finish_request(first, RequestStatus::Failed, Some(failure.clone()))
        .await
        .unwrap();
    store
        .finish_request(second, RequestStatus::CompensationFailed, None)
        .await
        .unwrap();
    let done = store.request(first).await.unwrap().unwrap();
    assert_eq!(done.status, RequestStatus::Failed);
    assert_eq!(done.failure, Some(failure));
    assert!(done.finished_at.is_some());
    let stuck = store.request(second).await.unwrap().unwrap();
    assert!(stuck.finished_at.is_none());
    let pending: Vec<RequestId> = store
        .unfinished_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.tenant_id == tenant)
        .map(|r| r.request_id)
        .collect();
    assert_eq!(
        pending,
        [second],
        "compensation-failed requests stay unfinished"
    );
    let err = store
        .finish_request(RequestId::new(), RequestStatus::Succeeded, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                kind: Entity::Request,
                ..
            }
        ),
        "{err}"
    );
}

/// Listing filters by state, region and plan and pages by id.
pub async fn listing_filters_and_pages(store: &dyn TenantStore) {
    // A prefix of its own, so other data in the store does not interfere.
    let prefix = unique_tenant("list");
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let tenant = TenantId::parse(format!("{prefix}-{name}")).unwrap();
        store
            .submit(create(&tenant, RequestId::new()))
            .await
            .unwrap();
        ids.push(tenant);
    }
    let mut record = store.tenant(&ids[1]).await.unwrap().unwrap();
    record.state = TenantState::Validating;
    store.update_tenant(record, 1, vec![]).await.unwrap();

    let mine = |records: Vec<TenantRecord>| -> Vec<TenantId> {
        records
            .into_iter()
            .map(|r| r.tenant_id)
            .filter(|id| id.as_str().starts_with(prefix.as_str()))
            .collect()
    };
    let mut filter = TenantFilter::all();
    filter.after = Some(prefix.clone());
    filter.limit = 2;
    let page = store.list_tenants(&filter).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(mine(page), ids[..2]);
    filter.after = Some(ids[1].clone());
    assert_eq!(mine(store.list_tenants(&filter).await.unwrap()), ids[2..]);

    let mut filter = TenantFilter::all();
    filter.state = Some(TenantState::Validating);
    filter.limit = 10_000;
    assert_eq!(
        mine(store.list_tenants(&filter).await.unwrap()),
        [ids[1].clone()]
    );
    filter.state = None;
    filter.region = Some("us-east".parse().unwrap());
    assert!(mine(store.list_tenants(&filter).await.unwrap()).is_empty());
    filter.region = Some("eu-west".parse().unwrap());
    filter.plan = Some("free".parse().unwrap());
    assert_eq!(mine(store.list_tenants(&filter).await.unwrap()), ids);

    // Read together: each one the catalog has, as stored; an unknown id left out.
    let unknown = unique_tenant("list-unknown");
    let wanted = [ids[2].clone(), unknown, ids[1].clone()];
    let mut found = store.tenants(&wanted).await.unwrap();
    found.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    assert_eq!(
        found.iter().map(|r| &r.tenant_id).collect::<Vec<_>>(),
        [&ids[1], &ids[2]]
    );
    assert_eq!(found[0].state, TenantState::Validating);
    assert_eq!(found[0].version, 2);
    assert!(store.tenants(&[]).await.unwrap().is_empty());
}

/// The outbox keeps a position per subscriber and tenant.
pub async fn outbox_keeps_a_position_per_subscriber_and_tenant(store: &dyn TenantStore) {
    let tenant = unique_tenant("outbox");
    let request_id = RequestId::new();
    store.submit(create(&tenant, request_id)).await.unwrap();
    let record = store.tenant(&tenant).await.unwrap().unwrap();
    let more = vec![NewEvent::new(
        EventKind::TenantProvisioned,
        request_id,
        serde_json::json!({}),
    )];
    store.update_tenant(record, 1, more).await.unwrap();
    let subscriber = format!("sub-{}", unique_tenant("s"));

    let mine = |events: Vec<crate::events::TenantEvent>| -> Vec<u64> {
        events
            .into_iter()
            .filter(|e| e.tenant_id == tenant)
            .map(|e| e.sequence)
            .collect()
    };
    assert_eq!(
        mine(
            store
                .undelivered_events(&subscriber, 100_000)
                .await
                .unwrap()
        ),
        [1, 2]
    );
    store.ack_event(&subscriber, &tenant, 1).await.unwrap();
    assert_eq!(
        mine(
            store
                .undelivered_events(&subscriber, 100_000)
                .await
                .unwrap()
        ),
        [2]
    );
    // Acknowledging an older position does not move the cursor back.
    store.ack_event(&subscriber, &tenant, 2).await.unwrap();
    store.ack_event(&subscriber, &tenant, 1).await.unwrap();
    assert!(
        mine(
            store
                .undelivered_events(&subscriber, 100_000)
                .await
                .unwrap()
        )
        .is_empty()
    );
    // Another subscriber has its own position.
    let other = format!("{subscriber}-other");
    assert_eq!(
        mine(store.undelivered_events(&other, 100_000).await.unwrap()),
        [1, 2]
    );
    // Ordered by tenant, then sequence, and limited.
    let all = store.undelivered_events(&other, 100_000).await.unwrap();
    let keys: Vec<(TenantId, u64)> = all
        .iter()
        .map(|e| (e.tenant_id.clone(), e.sequence))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(store.undelivered_events(&other, 1).await.unwrap().len(), 1);
}

/// Journal positions are exclusive; a run's status follows its entries.
pub async fn journal_positions_are_exclusive_and_status_is_tracked(store: &dyn TenantStore) {
    let run = RunId::new();
    let started = JournalEntry::RunStarted {
        workflow: "w".into(),
        steps: vec!["a".into()],
        context: serde_json::json!({"x": 1}),
    };
    store
        .append(JournalRecord::new(run, 0, started.clone()))
        .await
        .unwrap();
    let err = store
        .append(JournalRecord::new(run, 0, started))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let skipped = JournalRecord::new(run, 5, JournalEntry::RunCompleted);
    assert!(store.append(skipped).await.is_err(), "a gap is refused");
    assert!(store.unfinished_runs().await.unwrap().contains(&run));

    let step = JournalEntry::StepStarted {
        step: "a".into(),
        index: 0,
        attempt: 1,
    };
    store
        .append(JournalRecord::new(run, 1, step))
        .await
        .unwrap();
    store
        .append(JournalRecord::new(run, 2, JournalEntry::RunCompleted))
        .await
        .unwrap();
    let records = store.load(run).await.unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        records[0].entry.checkpoint(),
        Some(&serde_json::json!({"x": 1}))
    );
    let (state, _) = crate::saga::RunState::replay(run, &records).unwrap();
    assert_eq!(state.status, RunStatus::Completed);
    assert!(!store.unfinished_runs().await.unwrap().contains(&run));
    assert!(store.load(RunId::new()).await.unwrap().is_empty());
}

/// A batch appends consecutive records in order, a run's first batch starts
/// the run, the status follows the last record, and a batch at a taken
/// position stores nothing.
pub async fn journal_batches_keep_positions_and_status(store: &dyn TenantStore) {
    let run = RunId::new();
    let started = JournalEntry::RunStarted {
        workflow: "w".into(),
        steps: vec!["a".into(), "b".into()],
        context: serde_json::json!({"x": 1}),
    };
    let start = |index: usize| JournalEntry::StepStarted {
        step: ["a", "b"][index].into(),
        index,
        attempt: 1,
    };
    let completed = |index: usize| JournalEntry::StepCompleted {
        step: ["a", "b"][index].into(),
        index,
        attempt: 1,
        duration_ms: 3,
        context: serde_json::json!({"x": index + 2}),
    };
    let batch = |from: u64, entries: Vec<JournalEntry>| -> Vec<JournalRecord> {
        entries
            .into_iter()
            .zip(from..)
            .map(|(entry, seq)| JournalRecord::new(run, seq, entry))
            .collect()
    };
    store
        .append_batch(batch(0, vec![started.clone(), start(0)]))
        .await
        .unwrap();
    assert!(store.unfinished_runs().await.unwrap().contains(&run));
    let err = store
        .append_batch(batch(0, vec![started, start(0)]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let err = store
        .append_batch(batch(1, vec![completed(0), start(1)]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(store.load(run).await.unwrap().len(), 2, "nothing stored");

    store
        .append_batch(batch(2, vec![completed(0), start(1)]))
        .await
        .unwrap();
    store
        .append_batch(batch(4, vec![completed(1), JournalEntry::RunCompleted]))
        .await
        .unwrap();
    let records = store.load(run).await.unwrap();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(records[4].entry, completed(1));
    let (state, context) = crate::saga::RunState::replay(run, &records).unwrap();
    assert_eq!(state.status, RunStatus::Completed);
    assert_eq!(context, serde_json::json!({"x": 3}));
    assert!(!store.unfinished_runs().await.unwrap().contains(&run));
    store.append_batch(Vec::new()).await.unwrap();
}

/// A claimed request is leased to one worker until its lease expires or is
/// released; renewals by the holder extend it, by anyone else fail.
pub async fn leases_are_exclusive_renewable_and_expire(store: &dyn TenantStore) {
    use std::time::Duration;
    let tenant = unique_tenant("lease");
    let request_id = RequestId::new();
    store.submit(create(&tenant, request_id)).await.unwrap();
    let (a, b) = (format!("worker-a-{tenant}"), format!("worker-b-{tenant}"));
    let long = Duration::from_secs(60);
    let claimed = |records: Vec<RequestRecord>| records.iter().any(|r| r.request_id == request_id);

    assert!(
        claimed(store.claim_requests(&a, long, 100_000).await.unwrap()),
        "free request claimed"
    );
    assert!(
        !claimed(store.claim_requests(&b, long, 100_000).await.unwrap()),
        "held by a"
    );
    assert!(
        !claimed(store.claim_requests(&a, long, 100_000).await.unwrap()),
        "not twice to a"
    );
    assert!(store.renew_lease(&a, request_id, long).await.unwrap());
    assert!(!store.renew_lease(&b, request_id, long).await.unwrap());

    store.release_lease(&b, request_id).await.unwrap(); // not b's: no effect
    assert!(!claimed(
        store.claim_requests(&b, long, 100_000).await.unwrap()
    ));
    store.release_lease(&a, request_id).await.unwrap();
    assert!(claimed(
        store
            .claim_requests(&b, Duration::from_millis(50), 100_000)
            .await
            .unwrap()
    ));

    // b's short lease expires: a may take the request over, b may not renew.
    tokio_free_sleep(Duration::from_millis(120)).await;
    assert!(
        claimed(store.claim_requests(&a, long, 100_000).await.unwrap()),
        "expired lease passes on"
    );
    assert!(!store.renew_lease(&b, request_id, long).await.unwrap());

    // Finished requests are never claimed.
    store
        .finish_request(request_id, RequestStatus::Succeeded, None)
        .await
        .unwrap();
    store.release_lease(&a, request_id).await.unwrap();
    assert!(!claimed(
        store.claim_requests(&b, long, 100_000).await.unwrap()
    ));
}

/// A submission leased to its driver is never claimed by another worker
/// while the lease lasts (create and plain requests alike), its driver may
/// renew and release it, and a lapsed one passes to the next claimant. One
/// without a lease is free at once.
pub async fn a_submission_is_leased_from_its_first_instant(store: &dyn TenantStore) {
    use std::time::Duration;
    let tenant = unique_tenant("held");
    let (driver, other) = (format!("driver-{tenant}"), format!("other-{tenant}"));
    let long = Duration::from_secs(60);
    let create_id = RequestId::new();
    let outcome = store
        .submit(create(&tenant, create_id).leased_to(&driver, long))
        .await
        .unwrap();
    assert_eq!(outcome, SubmitOutcome::Accepted);
    let claimed =
        |records: &[RequestRecord], id: RequestId| records.iter().any(|r| r.request_id == id);
    let taken = store.claim_requests(&other, long, 100_000).await.unwrap();
    assert!(!claimed(&taken, create_id), "a leased create was claimed");
    assert!(store.renew_lease(&driver, create_id, long).await.unwrap());

    // A request on the tenant, leased briefly: claimable once it lapses.
    let short_id = RequestId::new();
    let record = RequestRecord::new(
        short_id,
        tenant.clone(),
        "suspend-tenant",
        serde_json::Value::Null,
        RunId::new(),
    );
    store
        .submit(Submission::request(record).leased_to(&driver, Duration::from_millis(50)))
        .await
        .unwrap();
    let taken = store.claim_requests(&other, long, 100_000).await.unwrap();
    assert!(
        !claimed(&taken, short_id),
        "claimed before its lease lapsed"
    );
    tokio_free_sleep(Duration::from_millis(120)).await;
    let taken = store.claim_requests(&other, long, 100_000).await.unwrap();
    assert!(claimed(&taken, short_id), "a lapsed lease passes on");
    assert!(!claimed(&taken, create_id), "the renewed lease still holds");
    assert!(!store.renew_lease(&driver, short_id, long).await.unwrap());

    // Released by its driver, the create is free.
    store.release_lease(&driver, create_id).await.unwrap();
    let taken = store.claim_requests(&other, long, 100_000).await.unwrap();
    assert!(claimed(&taken, create_id));
    for id in [create_id, short_id] {
        store
            .finish_request(id, RequestStatus::Succeeded, None)
            .await
            .unwrap();
        store.release_lease(&other, id).await.unwrap();
    }

    // Unleased, as before: free at once.
    let free_tenant = unique_tenant("free");
    let free_id = RequestId::new();
    store.submit(create(&free_tenant, free_id)).await.unwrap();
    let taken = store.claim_requests(&other, long, 100_000).await.unwrap();
    assert!(claimed(&taken, free_id));
    store
        .finish_request(free_id, RequestStatus::Succeeded, None)
        .await
        .unwrap();
    store.release_lease(&other, free_id).await.unwrap();
}

/// Sleeps without depending on a runtime's timer (the suite runs on any).
async fn tokio_free_sleep(duration: std::time::Duration) {
    let deadline = std::time::Instant::now() + duration;
    while std::time::Instant::now() < deadline {
        futures_util::future::ready(()).await;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
