//! The move workflow: a live tenant's data goes to another database (a plan
//! change, an operator's move, a drain) on the saga executor.
//!
//! validate -> reserve the target -> create and migrate it -> hold writes
//! (`Moving`) -> copy -> verify -> relocate storage (another region only)
//! -> cut over (placement, plan, state and `TenantMoved` in one write) ->
//! release the source. The tenant leaves `Moving` for the state it came
//! from: `Active`, or `Suspended` for a suspended tenant a drain moves.
//!
//! Cut-over is the pivot. Before it, any failure compensates: the target is
//! dropped, its reservation released, the storage's copy discarded, the
//! tenant back in its state on its source, which was never changed. After it, nothing is undone: every compensation
//! first asks the catalog whether the tenant lives on the target already and
//! then does nothing, so a failed release leaves the tenant on its target and
//! only the old copy behind, named in the request's failure.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Entity;
use crate::error::Error;
use crate::events::{EventKind, NewEvent};
use crate::model::{
    Placement, PlanName, RequestId, Residency, ShardId, TenantId, TenantRecord, TenantRequest,
    TenantState,
};
use crate::orchestrator::Parts;
use crate::orchestrator::create::placement_metadata;
use crate::orchestrator::transition::{
    MOVE_CLAIM, claim_move, load, release_move, rewrite, step_error, transition,
};
use crate::saga::{RetryPolicy, Step, StepError};
use crate::traits::{DatabaseOutcome, DropReason, TableComparison};

/// The name of the move workflow (plan changes, moves and drains).
pub const MOVE_TENANT: &str = "move-tenant";

/// Step names of the move workflow, in order.
pub mod move_steps {
    /// Checks the tenant can move (Active; Suspended in a drain), claims
    /// it, and records where it is and the state it returns to.
    pub const VALIDATE: &str = "validate-move";
    /// Decides the target placement and reserves room for it.
    pub const RESERVE: &str = "reserve-target";
    /// Creates the target database (or finds the shared one).
    pub const PREPARE: &str = "prepare-target";
    /// Migrates the target.
    pub const MIGRATE: &str = "migrate-target";
    /// Moves the tenant to `Moving`: its writes are held from here.
    pub const HOLD: &str = "hold-writes";
    /// Copies the tenant's rows to the target.
    pub const COPY: &str = "copy-data";
    /// Compares row counts and checksums, table by table.
    pub const VERIFY: &str = "verify-copy";
    /// Copies the tenant's storage objects to the target's region, when
    /// the storage keeps them per region and the region changes.
    pub const STORAGE: &str = "relocate-storage";
    /// Points the tenant at the target: placement, plan, its state again
    /// (Active or Suspended) and `TenantMoved` in one catalog write.
    pub const CUT_OVER: &str = "cut-over";
    /// Removes the tenant's data (and objects left in another region)
    /// from the source and gives its room back.
    pub const RELEASE: &str = "release-source";

    /// Every step, in order.
    pub const ALL: [&str; 10] = [
        VALIDATE, RESERVE, PREPARE, MIGRATE, HOLD, COPY, VERIFY, STORAGE, CUT_OVER, RELEASE,
    ];
}

/// Why a tenant moves; `TenantMoved` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MoveReason {
    /// Its plan changed, and with it the isolation or shard it needs.
    PlanChange,
    /// An operator moved it to a chosen shard.
    Operator,
    /// Its shard is being drained.
    Drain,
}

impl MoveReason {
    /// `plan_change`, `operator` or `drain`.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveReason::PlanChange => "plan_change",
            MoveReason::Operator => "operator",
            MoveReason::Drain => "drain",
        }
    }
}

/// The context of a move run, checkpointed after every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MoveContext {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The request being carried out.
    pub request_id: RequestId,
    /// Why it moves.
    pub reason: MoveReason,
    /// The plan it changes to (a plan change), else its current plan stays.
    pub plan: Option<PlanName>,
    /// The shard an operator chose, else the resolver picks one.
    pub shard: Option<ShardId>,
    /// Where it was when the move started.
    pub source: Option<Placement>,
    /// Where it goes; `None` once decided means there is nothing to move
    /// (a plan change that keeps the tenant where it is).
    pub target: Option<Placement>,
    /// Rows copied.
    pub rows: Option<u64>,
    /// The verification, table by table.
    pub tables: Vec<TableComparison>,
    /// The state the tenant was in when the move started, and returns to:
    /// Active, or Suspended for a tenant a drain moves.
    #[serde(default)]
    pub resume: Option<TenantState>,
}

impl MoveContext {
    pub(crate) fn new(
        tenant_id: TenantId,
        request_id: RequestId,
        reason: MoveReason,
        plan: Option<PlanName>,
        shard: Option<ShardId>,
    ) -> Self {
        MoveContext {
            tenant_id,
            request_id,
            reason,
            plan,
            shard,
            source: None,
            target: None,
            rows: None,
            tables: Vec::new(),
            resume: None,
        }
    }

    /// The state the tenant returns to when the move ends (see `resume`).
    fn resume(&self) -> TenantState {
        self.resume.unwrap_or(TenantState::Active)
    }

    fn source(&self) -> Result<&Placement, StepError> {
        self.source.as_ref().ok_or_else(|| {
            StepError::permanent(Error::invalid("tenant", "the move has no source recorded"))
        })
    }
}

/// What a move would do: the dry run of a plan change or a move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MovePreview {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Where it is.
    pub from: Placement,
    /// Where it would go; `None` when only its plan would change.
    pub to: Option<Placement>,
    /// The steps that would run.
    pub steps: Vec<String>,
    /// The tenant's rows per table at the source (what would be copied).
    pub tables: Vec<TableComparison>,
}

/// Decides where a move takes the tenant: `None` when it stays where it is
/// (a plan change that needs no other database). Reserves on the target
/// only when `reserve`. Refusals are clear errors, and nothing is kept
/// reserved after one.
pub(crate) async fn decide_target(
    parts: &Parts,
    record: &TenantRecord,
    reason: MoveReason,
    plan: Option<&PlanName>,
    shard: Option<&ShardId>,
    reserve: bool,
) -> Result<Option<Placement>, Error> {
    let tenant = &record.tenant_id;
    let source = record.placement.as_ref().ok_or_else(|| {
        Error::invalid(
            "tenant",
            format!("tenant {tenant} has no placement: only a provisioned tenant can move"),
        )
    })?;
    let mut request = TenantRequest::new(
        tenant.clone(),
        plan.cloned().unwrap_or_else(|| record.plan.clone()),
        record.region.clone(),
    );
    request.attributes = record.metadata.clone();
    request
        .attributes
        .retain(|k, _| !k.starts_with("placement.") && k != MOVE_CLAIM);
    let decision = parts.placement_policy.decide(&request).await?;
    let stays = decision.isolation == source.isolation && decision.region == source.region;
    if reason == MoveReason::PlanChange && stays {
        return Ok(None);
    }
    if let Some(shard) = shard
        && *shard == source.shard
        && decision.isolation == source.isolation
    {
        return Err(Error::invalid(
            "shard",
            format!("tenant {tenant} is on shard {shard} already"),
        ));
    }
    let resolver = &parts.resolver;
    // A drain looks for room in the region the tenant is in, which for a
    // flexible tenant may be a fallback, not its home; its placement keeps
    // the plan's decision.
    let mut asked = decision.clone();
    if reason == MoveReason::Drain {
        asked.region = source.region.clone();
        asked.residency = Residency::Strict;
    }
    let choice = match (shard, reserve) {
        (Some(shard), true) => resolver.resolve_on(tenant, &asked, shard).await?,
        (Some(shard), false) => resolver.preview_on(tenant, &asked, shard).await?,
        (None, true) => resolver.resolve(tenant, &asked).await?,
        (None, false) => resolver.preview(tenant, &asked).await?,
    };
    let residency = decision.check_residency(tenant, &choice);
    let target = Placement::new(tenant.clone(), decision.clone(), choice);
    let refusal = if let Err(refusal) = residency {
        Some(refusal)
    } else if reason == MoveReason::Drain && target.region != source.region {
        Some(Error::invalid(
            "shard",
            format!(
                "no other shard of region {} can take tenant {tenant}: a drain keeps its \
                 tenants in their region",
                source.region
            ),
        ))
    } else if target.shard == source.shard && target.isolation == source.isolation {
        Some(Error::invalid(
            "shard",
            format!(
                "tenant {tenant} is on shard {} already and no other shard of its region and \
                 pool can take it",
                target.shard
            ),
        ))
    } else {
        None
    };
    let located = match refusal {
        Some(error) => Err(error),
        None => same_database(parts, source, &target),
    };
    match located {
        Ok(database) => Ok(Some(target.with_database(database))),
        Err(error) => {
            if reserve {
                let _ = resolver.release(tenant, &target.shard).await;
            }
            Err(error)
        }
    }
}

/// `target`'s location, refused when it is where the tenant's data is now:
/// two shards whose connections resolve to one database would have the move
/// copy the tenant onto itself, and its rollback drop the tenant's data.
fn same_database(
    parts: &Parts,
    source: &Placement,
    target: &Placement,
) -> Result<Option<String>, Error> {
    let database = parts
        .schema
        .locate(target)?
        .map(|d| crate::model::redact_secrets(&d));
    let current = match &source.database {
        Some(recorded) => Some(recorded.clone()),
        None => parts
            .schema
            .locate(source)?
            .map(|d| crate::model::redact_secrets(&d)),
    };
    if database.is_some() && database == current {
        return Err(Error::invalid(
            "shard",
            format!(
                "shard {}'s connection puts tenant {} in the database it is in now ({}): \
                 nothing would move",
                target.shard,
                target.tenant_id,
                database.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok(database)
}

/// Whether a tenant in `state` may start a move for `reason`: an Active
/// one always; a Suspended one in a drain, which must empty its shard.
pub(crate) fn movable(state: TenantState, reason: MoveReason) -> bool {
    state == TenantState::Active || (state == TenantState::Suspended && reason == MoveReason::Drain)
}

/// Whether the catalog already points the tenant at `target`: cut-over
/// happened, and nothing before it may be undone.
async fn cut_over(parts: &Parts, ctx: &MoveContext) -> Result<bool, StepError> {
    let Some(target) = &ctx.target else {
        return Ok(false);
    };
    let record = load(&*parts.store, &ctx.tenant_id)
        .await
        .map_err(step_error)?;
    Ok(record.placement.is_some_and(|p| p.same_location(target)))
}

/// A move step: its name, what it does and what undoes it.
pub(crate) struct MoveStep {
    name: &'static str,
    parts: Arc<Parts>,
    retry: Option<RetryPolicy>,
}

impl MoveStep {
    pub(crate) fn all(parts: &Arc<Parts>) -> Vec<MoveStep> {
        move_steps::ALL
            .into_iter()
            .map(|name| MoveStep {
                name,
                parts: Arc::clone(parts),
                // Release runs after cut-over and must get done: it is
                // retried longer than the rest.
                retry: (name == move_steps::RELEASE).then(|| {
                    RetryPolicy::builder()
                        .max_attempts(10)
                        .build()
                        .unwrap_or_default()
                }),
            })
            .collect()
    }
}

#[async_trait]
impl Step<MoveContext> for MoveStep {
    fn name(&self) -> &str {
        self.name
    }

    fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    async fn execute(&self, ctx: &mut MoveContext) -> Result<(), StepError> {
        let p = &*self.parts;
        match self.name {
            move_steps::VALIDATE => {
                let record = load(&*p.store, &ctx.tenant_id).await.map_err(step_error)?;
                // Moving: this run held the writes before a crash. A
                // suspended tenant moves only in a drain, which must empty
                // its shard; it stays suspended.
                let movable =
                    record.state == TenantState::Moving || movable(record.state, ctx.reason);
                if !movable {
                    return Err(StepError::permanent(Error::IllegalTransition {
                        from: record.state,
                        to: TenantState::Moving,
                    }));
                }
                if record.state == TenantState::Moving
                    && record.metadata.get(MOVE_CLAIM) != Some(&ctx.request_id.to_string())
                {
                    return Err(StepError::permanent(Error::IllegalTransition {
                        from: record.state,
                        to: TenantState::Moving,
                    }));
                }
                // One move of a tenant at a time: the claim is decided on a
                // fresh read and written version-checked, before anything
                // is created, so a second move fails here with nothing to undo.
                claim_move(p, &ctx.tenant_id, &ctx.request_id.to_string())
                    .await
                    .map_err(step_error)?;
                if ctx.source.is_none() {
                    ctx.source = record.placement;
                }
                if ctx.resume.is_none() && record.state != TenantState::Moving {
                    ctx.resume = Some(record.state);
                }
                ctx.source()?;
                Ok(())
            }
            move_steps::RESERVE => {
                let mut record = load(&*p.store, &ctx.tenant_id).await.map_err(step_error)?;
                // Decide from where the move started, whatever a crashed
                // attempt left.
                record.placement = Some(ctx.source()?.clone());
                ctx.target = decide_target(
                    p,
                    &record,
                    ctx.reason,
                    ctx.plan.as_ref(),
                    ctx.shard.as_ref(),
                    true,
                )
                .await
                .map_err(step_error)?;
                Ok(())
            }
            move_steps::PREPARE => {
                let Some(target) = &ctx.target else {
                    return Ok(());
                };
                match p.schema.provision(target).await.map_err(step_error)? {
                    DatabaseOutcome::Adopted => Err(StepError::permanent(Error::Conflict {
                        kind: Entity::TenantDatabase,
                        id: ctx.tenant_id.to_string(),
                        reason: format!(
                            "the target {} exists already and was not made by this move",
                            target.database.as_deref().unwrap_or(target.shard.as_str())
                        ),
                    })),
                    DatabaseOutcome::Created | DatabaseOutcome::Shared => Ok(()),
                }
            }
            move_steps::MIGRATE => {
                if let Some(target) = &ctx.target {
                    p.schema.migrate(target).await.map_err(step_error)?;
                }
                Ok(())
            }
            move_steps::HOLD => {
                if ctx.target.is_some() {
                    transition(
                        p,
                        &ctx.tenant_id,
                        &[ctx.resume()],
                        TenantState::Moving,
                        |_| {},
                        Vec::new,
                    )
                    .await
                    .map_err(step_error)?;
                    // Moving: no workflow of the user's starts any more, and
                    // those already running write where the tenant was.
                    await_workflows(p, &ctx.tenant_id).await?;
                }
                Ok(())
            }
            move_steps::COPY => {
                if let Some(target) = &ctx.target {
                    let rows = p
                        .schema
                        .copy_tenant(ctx.source()?, target)
                        .await
                        .map_err(step_error)?;
                    ctx.rows = Some(rows);
                }
                Ok(())
            }
            move_steps::VERIFY => {
                let Some(target) = &ctx.target else {
                    return Ok(());
                };
                let tables = p
                    .schema
                    .compare_tenant(ctx.source()?, target)
                    .await
                    .map_err(step_error)?;
                if let Some(bad) = tables.iter().find(|t| !t.matches()) {
                    return Err(StepError::permanent(Error::Conflict {
                        kind: Entity::TenantData,
                        id: ctx.tenant_id.to_string(),
                        reason: format!(
                            "the copy of table {} differs from its source ({} rows, checksum {} \
                             at the source; {} rows, checksum {} at the target)",
                            bad.table,
                            bad.source_rows,
                            bad.source_checksum,
                            bad.target_rows,
                            bad.target_checksum
                        ),
                    }));
                }
                ctx.tables = tables;
                if ctx.resume() == TenantState::Suspended {
                    // The database hook of its suspension, at its new place,
                    // before it lives there (a rollback drops the target).
                    p.schema.suspend(target).await.map_err(step_error)?;
                }
                Ok(())
            }
            move_steps::STORAGE => {
                let (Some(source), Some(target)) = (&ctx.source, &ctx.target) else {
                    return Ok(());
                };
                if !p.storage.keeps_objects(source, target) {
                    p.storage
                        .relocate(source, target)
                        .await
                        .map_err(step_error)?;
                }
                Ok(())
            }
            move_steps::CUT_OVER => self.cut_over(ctx).await,
            move_steps::RELEASE => {
                let holder = ctx.request_id.to_string();
                let (Some(source), Some(target)) = (&ctx.source, &ctx.target) else {
                    return release_move(p, &ctx.tenant_id, &holder)
                        .await
                        .map_err(step_error);
                };
                // The move's claim is kept until here, so no other move can
                // take the tenant back to the source before it is released:
                // the release would then remove the live copy. Checked once
                // more against the catalog all the same.
                if !cut_over(p, ctx).await? {
                    return Err(StepError::permanent(Error::Conflict {
                        kind: Entity::Tenant,
                        id: ctx.tenant_id.to_string(),
                        reason: "it no longer lives where this move put it: its source is left \
                                 as it is"
                            .to_owned(),
                    }));
                }
                p.schema
                    .drop_tenant(source, DropReason::Delete)
                    .await
                    .map_err(step_error)?;
                if !p.storage.keeps_objects(source, target) {
                    // Copied to the target before cut-over: the source's are extra.
                    p.storage
                        .release_relocated(source, target)
                        .await
                        .map_err(step_error)?;
                }
                if source.shard != target.shard {
                    p.resolver
                        .release(&ctx.tenant_id, &source.shard)
                        .await
                        .map_err(step_error)?;
                }
                tracing::info!(tenant_id = %ctx.tenant_id, from = %source.shard, "source released");
                release_move(p, &ctx.tenant_id, &holder)
                    .await
                    .map_err(step_error)
            }
            other => Err(StepError::permanent(Error::invalid(
                "step",
                format!("unknown move step {other:?}"),
            ))),
        }
    }

    async fn compensate(&self, ctx: &mut MoveContext) -> Result<(), StepError> {
        let p = &*self.parts;
        if cut_over(p, ctx).await? {
            // Past the pivot: the tenant lives on the target; keep it. The
            // move is over (its release failed): its claim goes.
            if self.name == move_steps::VALIDATE {
                return release_move(p, &ctx.tenant_id, &ctx.request_id.to_string())
                    .await
                    .map_err(step_error);
            }
            return Ok(());
        }
        if self.name == move_steps::VALIDATE {
            return release_move(p, &ctx.tenant_id, &ctx.request_id.to_string())
                .await
                .map_err(step_error);
        }
        let Some(target) = ctx.target.clone() else {
            return Ok(());
        };
        match self.name {
            move_steps::RESERVE => {
                let moved_shard = ctx.source.as_ref().is_none_or(|s| s.shard != target.shard);
                if moved_shard {
                    p.resolver
                        .release(&ctx.tenant_id, &target.shard)
                        .await
                        .map_err(step_error)?;
                }
                Ok(())
            }
            move_steps::PREPARE => {
                // Never the tenant's own database, whatever decided the target.
                let source = ctx.source.as_ref().and_then(|s| s.database.as_deref());
                if target.database.is_some() && target.database.as_deref() == source {
                    return Ok(());
                }
                p.schema
                    .drop_tenant(&target, DropReason::Compensation)
                    .await
                    .map_err(step_error)
            }
            move_steps::STORAGE => {
                let Some(source) = &ctx.source else {
                    return Ok(());
                };
                if p.storage.keeps_objects(source, &target) {
                    return Ok(());
                }
                // The tenant lives at the source; the storage removes only
                // what the relocation wrote at the target.
                p.storage
                    .discard_relocated(source, &target)
                    .await
                    .map_err(step_error)
            }
            move_steps::HOLD => {
                let record = load(&*p.store, &ctx.tenant_id).await.map_err(step_error)?;
                if record.metadata.get(MOVE_CLAIM) != Some(&ctx.request_id.to_string()) {
                    return Ok(()); // another move's hold, not ours to lift
                }
                transition(
                    p,
                    &ctx.tenant_id,
                    &[TenantState::Moving],
                    ctx.resume(),
                    |_| {},
                    Vec::new,
                )
                .await
                .map_err(step_error)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// How long a move, the tenant's writes held, waits for workflows of the
/// user's that were already running on the tenant.
pub(crate) const WORKFLOW_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until no workflow of the user's is unfinished for `tenant` (they
/// run over the placement they started with, so a copy taken while one
/// writes could miss its rows), for at most [`WORKFLOW_WAIT`].
async fn await_workflows(p: &Parts, tenant: &TenantId) -> Result<(), StepError> {
    const BUILT_IN: [&str; 5] = [
        crate::orchestrator::CREATE_TENANT,
        crate::orchestrator::SUSPEND_TENANT,
        crate::orchestrator::RESUME_TENANT,
        crate::orchestrator::DELETE_TENANT,
        MOVE_TENANT,
    ];
    let start = p.timer.now();
    loop {
        let running: Vec<String> = p
            .store
            .unfinished_requests()
            .await
            .map_err(step_error)?
            .into_iter()
            .filter(|r| r.tenant_id == *tenant && !BUILT_IN.contains(&r.workflow.as_str()))
            .map(|r| format!("{} {}", r.workflow, r.request_id))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        if p.timer.now().duration_since(start) >= WORKFLOW_WAIT {
            return Err(StepError::permanent(Error::Conflict {
                kind: Entity::Tenant,
                id: tenant.to_string(),
                reason: format!(
                    "workflow requests still unfinished after {} s with the tenant's writes \
                     held ({}); the move is rolled back: run it again once they have ended \
                     (`recover` finishes one a crash left)",
                    WORKFLOW_WAIT.as_secs(),
                    running.join(", ")
                ),
            }));
        }
        p.timer.sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl MoveStep {
    /// The pivot: the new placement and plan, the state it came from, and the event, in
    /// one write. A plan change that moves nothing records the plan only.
    async fn cut_over(&self, ctx: &mut MoveContext) -> Result<(), StepError> {
        let p = &*self.parts;
        let request_id = ctx.request_id;
        let holder = request_id.to_string();
        let source = ctx.source()?.clone();
        let Some(target) = ctx.target.clone() else {
            let Some(plan) = ctx.plan.clone() else {
                return Ok(());
            };
            let record = load(&*p.store, &ctx.tenant_id).await.map_err(step_error)?;
            if record.plan == plan {
                return Ok(()); // written before a crash
            }
            let from = record.plan.clone();
            rewrite(
                p,
                &ctx.tenant_id,
                |r| {
                    r.plan = plan.clone();
                    if let Some(placement) = &mut r.placement {
                        placement.plan = plan.clone();
                    }
                },
                || {
                    vec![NewEvent::new(
                        EventKind::TenantPlanChanged,
                        request_id,
                        serde_json::json!({ "from": from, "to": plan }),
                    )]
                },
            )
            .await
            .map_err(step_error)?;
            return Ok(());
        };
        let record = load(&*p.store, &ctx.tenant_id).await.map_err(step_error)?;
        let placed = record
            .placement
            .as_ref()
            .is_some_and(|now| now.same_location(&target));
        match record.state {
            // Written before a crash.
            TenantState::Active | TenantState::Suspended if placed => return Ok(()),
            TenantState::Moving if record.metadata.get(MOVE_CLAIM) == Some(&holder) => {}
            state => {
                return Err(StepError::permanent(Error::Conflict {
                    kind: Entity::Tenant,
                    id: ctx.tenant_id.to_string(),
                    reason: format!(
                        "tenant {} is {state} and not held by this move: nothing cut over",
                        ctx.tenant_id
                    ),
                }));
            }
        }
        let reason = ctx.reason;
        let rows = ctx.rows;
        transition(
            p,
            &ctx.tenant_id,
            &[TenantState::Moving],
            ctx.resume(),
            |r| {
                r.plan = target.plan.clone();
                r.placement = Some(target.clone());
                r.metadata.retain(|k, _| !k.starts_with("placement."));
                r.metadata.extend(placement_metadata(&target));
            },
            || {
                vec![NewEvent::new(
                    EventKind::TenantMoved,
                    request_id,
                    moved_event(&source, &target, reason, rows),
                )]
            },
        )
        .await
        .map_err(step_error)?;
        Ok(())
    }
}

/// `TenantMoved`'s data: from, to, why, and the rows copied.
fn moved_event(
    from: &Placement,
    to: &Placement,
    reason: MoveReason,
    rows: Option<u64>,
) -> serde_json::Value {
    let side = |p: &Placement| {
        let mut side = BTreeMap::from([
            ("shard", serde_json::json!(p.shard)),
            ("isolation", serde_json::json!(p.isolation)),
            ("region", serde_json::json!(p.region)),
            ("plan", serde_json::json!(p.plan)),
        ]);
        if let Some(database) = &p.database {
            side.insert("database", serde_json::json!(database));
        }
        side
    };
    serde_json::json!({
        "from": side(from),
        "to": side(to),
        "reason": reason.as_str(),
        "rows": rows,
    })
}
