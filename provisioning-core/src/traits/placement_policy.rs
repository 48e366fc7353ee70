//! [`PlacementPolicy`]: turns a request into a placement decision.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{PlacementDecision, TenantRequest};

/// Decides how a tenant is isolated and where it must live.
///
/// Called once per create (and again on a retry of a Failed tenant). It must not
/// have side effects: the orchestrator also calls it for dry runs. An unknown
/// plan or region is an [`Error::InvalidInput`](crate::Error::InvalidInput) naming
/// the field.
///
/// ```
/// use async_trait::async_trait;
/// use provisioning_core::{
///     Error, Isolation, PlacementDecision, Residency, Result, PlacementPolicy, TenantRequest,
/// };
///
/// /// Premium tenants get their own database; everyone else shares.
/// struct ByPlan;
///
/// #[async_trait]
/// impl PlacementPolicy for ByPlan {
///     async fn decide(&self, request: &TenantRequest) -> Result<PlacementDecision> {
///         let isolation = match request.plan.as_str() {
///             "free" | "standard" => Isolation::Shared,
///             "premium" => Isolation::Dedicated,
///             other => return Err(Error::invalid("plan", format!("unknown plan {other:?}"))),
///         };
///         Ok(PlacementDecision::new(
///             request.plan.clone(),
///             isolation,
///             request.region.clone(),
///             Residency::Strict,
///             format!("plan {} maps to {isolation}", request.plan),
///         ))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let request = TenantRequest::new("acme".parse()?, "premium".parse()?, "eu-west".parse()?);
/// let decision = ByPlan.decide(&request).await?;
/// assert_eq!(decision.isolation, Isolation::Dedicated);
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait PlacementPolicy: Send + Sync {
    /// The isolation, region and residency for `request`, with the reason.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an unknown plan or
    /// region; any other error fails validation of the request.
    async fn decide(&self, request: &TenantRequest) -> Result<PlacementDecision>;
}

#[async_trait]
impl<T: PlacementPolicy + ?Sized> PlacementPolicy for Arc<T> {
    async fn decide(&self, request: &TenantRequest) -> Result<PlacementDecision> {
        (**self).decide(request).await
    }
}

#[async_trait]
impl<T: PlacementPolicy + ?Sized> PlacementPolicy for Box<T> {
    async fn decide(&self, request: &TenantRequest) -> Result<PlacementDecision> {
        (**self).decide(request).await
    }
}
