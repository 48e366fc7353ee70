//! [`EventDispatcher`]: delivers the outbox to subscribers, per tenant in order,
//! at least once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{BoxError, Result};
use crate::events::TenantEvent;
use crate::model::TenantId;
use crate::saga::{CancellationToken, Timer};
use crate::store::TenantStore;

/// Receives lifecycle events (identity seeding, billing, search indexing...).
///
/// Delivery is at least once: after a crash, or when `handle` fails, the same
/// event comes again, so `handle` must be idempotent (use `tenant_id` and
/// `sequence` as the deduplication key). Events of one tenant arrive in
/// sequence order, and a failing event is retried, never skipped: later events
/// of that tenant wait behind it.
///
/// ```
/// use async_trait::async_trait;
/// use provisioning_core::{BoxError, EventKind, EventSubscriber, TenantEvent};
///
/// struct Billing;
///
/// #[async_trait]
/// impl EventSubscriber for Billing {
///     fn name(&self) -> &str { "billing" }
///     async fn handle(&self, event: &TenantEvent) -> Result<(), BoxError> {
///         if event.kind == EventKind::TenantProvisioned {
///             // open a billing account for event.tenant_id, keyed by it
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait EventSubscriber: Send + Sync {
    /// A stable name: the store keeps this subscriber's delivery position under it.
    fn name(&self) -> &str;

    /// Handles one event.
    ///
    /// # Errors
    /// Any error: the event is delivered again on the next round.
    async fn handle(&self, event: &TenantEvent) -> Result<(), BoxError>;
}

/// What one delivery round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatchReport {
    /// Events handled successfully (per subscriber).
    pub delivered: usize,
    /// Deliveries that failed and will be retried.
    pub failed: usize,
}

/// Delivers outbox events to subscribers.
///
/// Call [`dispatch_once`](Self::dispatch_once) after writes, or run
/// [`run`](Self::run) in a background task. Each subscriber has its own
/// position per tenant in the store, so one slow or failing subscriber does
/// not hold back another, and one failing tenant does not hold back others.
#[derive(Clone)]
pub struct EventDispatcher {
    store: Arc<dyn TenantStore>,
    subscribers: Vec<Arc<dyn EventSubscriber>>,
    batch: usize,
}

impl std::fmt::Debug for EventDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDispatcher")
            .field(
                "subscribers",
                &self
                    .subscribers
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>(),
            )
            .field("batch", &self.batch)
            .finish()
    }
}

impl EventDispatcher {
    /// A dispatcher over `store`'s outbox, fetching up to 256 events per round.
    pub fn new(store: Arc<dyn TenantStore>, subscribers: Vec<Arc<dyn EventSubscriber>>) -> Self {
        EventDispatcher {
            store,
            subscribers,
            batch: 256,
        }
    }

    /// The subscribers, in registration order.
    pub fn subscribers(&self) -> &[Arc<dyn EventSubscriber>] {
        &self.subscribers
    }

    /// Delivers what is pending, once: for each subscriber, each tenant's
    /// undelivered events in order, stopping at a tenant's first failure.
    ///
    /// # Errors
    /// Store failures (subscriber failures are counted, not returned).
    pub async fn dispatch_once(&self) -> Result<DispatchReport> {
        let mut report = DispatchReport::default();
        for subscriber in &self.subscribers {
            let name = subscriber.name();
            let events = self.store.undelivered_events(name, self.batch).await?;
            let mut blocked: HashSet<TenantId> = HashSet::new();
            for event in events {
                if blocked.contains(&event.tenant_id) {
                    continue;
                }
                match subscriber.handle(&event).await {
                    Ok(()) => {
                        self.store
                            .ack_event(name, &event.tenant_id, event.sequence)
                            .await?;
                        report.delivered += 1;
                    }
                    Err(error) => {
                        tracing::warn!(
                            subscriber = name,
                            tenant_id = %event.tenant_id,
                            sequence = event.sequence,
                            kind = %event.kind,
                            error = %error,
                            "event delivery failed; will retry"
                        );
                        report.failed += 1;
                        blocked.insert(event.tenant_id.clone());
                    }
                }
            }
        }
        Ok(report)
    }

    /// Delivers in rounds until `cancel` is cancelled, pausing `idle` after a
    /// round that delivered nothing (or only failed).
    ///
    /// # Errors
    /// Store failures end the loop.
    pub async fn run(
        &self,
        timer: &dyn Timer,
        idle: Duration,
        cancel: &CancellationToken,
    ) -> Result<()> {
        while !cancel.is_cancelled() {
            let report = self.dispatch_once().await?;
            if report.delivered == 0 {
                let sleep = timer.sleep(idle);
                futures_util::future::select(sleep, Box::pin(cancel.cancelled())).await;
            }
        }
        Ok(())
    }
}
