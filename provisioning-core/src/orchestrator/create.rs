//! The create-tenant workflow: validate, place, prepare the database, migrate,
//! seed, initialize storage, the user's steps, activate.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::events::{EventKind, NewEvent};
use crate::model::{Placement, PlacementDecision, TenantRequest, TenantState};
use crate::orchestrator::Parts;
use crate::orchestrator::transition::{step_error, transition};
use crate::saga::{Step, StepError};
use crate::traits::{DatabaseOutcome, DropReason, RemovalMode};

/// The name of the create workflow.
pub const CREATE_TENANT: &str = "create-tenant";

/// Step names of the create workflow, in order (user steps run before `activate`).
pub mod steps {
    /// Moves the tenant to Validating and asks the placement policy for a decision.
    pub const VALIDATE: &str = "validate";
    /// Asks the shard resolver for a shard and records the placement.
    pub const PLACE: &str = "place";
    /// Creates (or adopts) the tenant's database.
    pub const PREPARE_DATABASE: &str = "prepare-database";
    /// Runs the tenant's migrations.
    pub const MIGRATE: &str = "migrate";
    /// Runs the tenant's seeds.
    pub const SEED: &str = "seed";
    /// Creates the tenant's storage.
    pub const INITIALIZE_STORAGE: &str = "initialize-storage";
    /// Moves the tenant to Active.
    pub const ACTIVATE: &str = "activate";
}

/// The context of a create run, checkpointed after every step. Steps that a
/// user registers for the create workflow receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateContext {
    /// The request being carried out.
    pub request: TenantRequest,
    /// The placement policy's decision, once made.
    pub decision: Option<PlacementDecision>,
    /// The placement, once the shard is chosen (journaled as `plan` by
    /// earlier versions, which still resume).
    #[serde(alias = "plan")]
    pub placement: Option<Placement>,
    /// What preparing the database found or did.
    pub database: Option<DatabaseOutcome>,
}

impl CreateContext {
    /// The context a create run starts with.
    pub fn new(request: TenantRequest) -> Self {
        CreateContext {
            request,
            decision: None,
            placement: None,
            database: None,
        }
    }

    /// The placement; an error before the `place` step ran.
    ///
    /// # Errors
    /// A permanent [`StepError`] when no placement is recorded yet.
    pub fn placement(&self) -> Result<&Placement, StepError> {
        self.placement.as_ref().ok_or_else(|| {
            StepError::permanent(Error::invalid(
                "plan",
                "the tenant has no placement yet: register create steps, which run after `place`",
            ))
        })
    }
}

macro_rules! create_step {
    ($ty:ident, $name:expr) => {
        pub(crate) struct $ty(pub(crate) Arc<Parts>);

        impl $ty {
            const NAME: &'static str = $name;
        }
    };
}

create_step!(Validate, steps::VALIDATE);
create_step!(Place, steps::PLACE);
create_step!(PrepareDatabase, steps::PREPARE_DATABASE);
create_step!(Migrate, steps::MIGRATE);
create_step!(Seed, steps::SEED);
create_step!(InitializeStorage, steps::INITIALIZE_STORAGE);
create_step!(Activate, steps::ACTIVATE);

#[async_trait]
impl Step<CreateContext> for Validate {
    fn name(&self) -> &str {
        Self::NAME
    }
    async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        let tenant = &ctx.request.tenant_id;
        transition(
            &self.0,
            tenant,
            &[TenantState::Requested, TenantState::Failed],
            TenantState::Validating,
            |r| r.failure = None,
            Vec::new,
        )
        .await
        .map_err(step_error)?;
        ctx.request.validate().map_err(StepError::permanent)?;
        // Decided at submission when the request came through `create`.
        if ctx.decision.is_none() {
            let decision = self
                .0
                .placement_policy
                .decide(&ctx.request)
                .await
                .map_err(step_error)?;
            ctx.decision = Some(decision);
        }
        Ok(())
    }
}

#[async_trait]
impl Step<CreateContext> for Place {
    fn name(&self) -> &str {
        Self::NAME
    }
    async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        let tenant = ctx.request.tenant_id.clone();
        let decision = ctx.decision.clone().ok_or_else(|| {
            StepError::permanent(Error::invalid("plan", "no placement decision was recorded"))
        })?;
        let choice = self
            .0
            .resolver
            .resolve(&tenant, &decision)
            .await
            .map_err(step_error)?;
        // Residency is checked here too, so that a custom resolver's mistake
        // cannot place a strict tenant abroad.
        if let Err(refusal) = decision.check_residency(&tenant, &choice) {
            // Give back what the resolver reserved before failing.
            let _ = self.0.resolver.release(&tenant, &choice.shard).await;
            return Err(StepError::permanent(refusal));
        }
        let plan = Placement::new(tenant.clone(), decision, choice);
        let database = match self.0.schema.locate(&plan) {
            Ok(database) => database,
            Err(e) => {
                let _ = self.0.resolver.release(&tenant, &plan.shard).await;
                return Err(step_error(e));
            }
        };
        let plan = plan.with_database(database);
        ctx.placement = Some(plan.clone());
        transition(
            &self.0,
            &tenant,
            &[TenantState::Validating],
            TenantState::Provisioning,
            |r| {
                r.metadata.extend(placement_metadata(&plan));
                r.placement = Some(plan.clone());
            },
            Vec::new,
        )
        .await
        .map_err(step_error)?;
        Ok(())
    }
    async fn compensate(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        if let Some(plan) = &ctx.placement {
            self.0
                .resolver
                .release(&plan.tenant_id, &plan.shard)
                .await
                .map_err(step_error)?;
        }
        Ok(())
    }
}

/// The placement as metadata entries, so that listings and events show it.
pub(crate) fn placement_metadata(placement: &Placement) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::from([
        (
            "placement.isolation".to_owned(),
            placement.isolation.to_string(),
        ),
        ("placement.region".to_owned(), placement.region.to_string()),
        ("placement.shard".to_owned(), placement.shard.to_string()),
        ("placement.reason".to_owned(), placement.reason.clone()),
    ]);
    if let Some(database) = &placement.database {
        metadata.insert("placement.database".to_owned(), database.clone());
    }
    metadata
}

#[async_trait]
impl Step<CreateContext> for PrepareDatabase {
    fn name(&self) -> &str {
        Self::NAME
    }
    async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        let outcome = self
            .0
            .schema
            .provision(ctx.placement()?)
            .await
            .map_err(step_error)?;
        ctx.database = Some(outcome);
        Ok(())
    }
    async fn compensate(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        // The manager removes what this provisioning made (a created database,
        // or the tenant's rows in a shared one) and never an adopted database.
        if let Some(plan) = &ctx.placement {
            self.0
                .schema
                .drop_tenant(plan, DropReason::Compensation)
                .await
                .map_err(step_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Step<CreateContext> for Migrate {
    fn name(&self) -> &str {
        Self::NAME
    }
    async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        self.0
            .schema
            .migrate(ctx.placement()?)
            .await
            .map_err(step_error)?;
        Ok(())
    }
}

#[async_trait]
impl Step<CreateContext> for Seed {
    fn name(&self) -> &str {
        Self::NAME
    }
    async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        self.0
            .schema
            .seed(ctx.placement()?)
            .await
            .map_err(step_error)?;
        Ok(())
    }
}

#[async_trait]
impl Step<CreateContext> for InitializeStorage {
    fn name(&self) -> &str {
        Self::NAME
    }
    async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        self.0
            .storage
            .initialize(ctx.placement()?)
            .await
            .map_err(step_error)
    }
    async fn compensate(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        if let Some(plan) = &ctx.placement {
            self.0
                .storage
                .remove(plan, RemovalMode::Purge)
                .await
                .map_err(step_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Step<CreateContext> for Activate {
    fn name(&self) -> &str {
        Self::NAME
    }
    async fn execute(&self, ctx: &mut CreateContext) -> Result<(), StepError> {
        let plan = ctx.placement()?.clone();
        let request_id = ctx.request.request_id;
        transition(
            &self.0,
            &ctx.request.tenant_id,
            &[TenantState::Provisioning],
            TenantState::Active,
            |_| {},
            || {
                vec![NewEvent::new(
                    EventKind::TenantProvisioned,
                    request_id,
                    serde_json::json!({ "placement": plan }),
                )]
            },
        )
        .await
        .map_err(step_error)?;
        Ok(())
    }
}
