//! (5) The `resource` workflow: allocate a database, storage or compute for a
//! service the tenant subscribes to, within the quota of the service's tier.
//!
//! Its steps, as the Provisioning Service design names them:
//!
//! 1. `check-subscription`: the tenant subscribes to the service (a `service`
//!    run enabled it); its tier is recorded for the steps after it;
//! 2. `reserve-quota`: in one transaction, counts the service's resources of
//!    the type and records this one (`settings` row `resource.{id}`), or fails
//!    naming the limit: two runs at once cannot both take the last slot;
//! 3. `allocate`: a database (a SQLite database at
//!    `tenants/{tenant}/resources/{id}/database.sqlite` in the tenant's
//!    storage), storage (the prefix `tenants/{tenant}/resources/{id}/`), or
//!    compute (a `compute.{id}` allocation row in the tenant's database).
//!    Database and storage resources live under the tenant's storage folder, so
//!    they are archived, purged and moved with the tenant;
//! 4. `record-billing`: the billing record, an `audit_log` row
//!    (`resource.billed`) with the type, tier and spec;
//!
//! then the orchestrator emits `ResourceProvisioned`. Each step is compensated
//! exactly, and all of them write through the tenant's placement as the
//! orchestrator hands it to the run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use provisioning_core::{Entity, Error, Placement, RequestId, Result, Step, StepError, TenantId};
use provisioning_storage::ObjectStoreInitializer;
use provisioning_storage::object_store::path::Path as ObjectPath;
use provisioning_storage::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::input::{Tier, from_json, validate_service};
use super::tenant_db::{Conn, Scope, TenantData, TenantDb, step_error};

/// The `resource` workflow's name.
pub(crate) const RESOURCE: &str = "resource";

/// A `resource` run's context.
pub(crate) type ResourceContext = provisioning_core::WorkflowContext<ResourceInput>;

/// What a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ResourceType {
    Database,
    Storage,
    Compute,
}

impl ResourceType {
    const NAMES: &'static str = "database, storage or compute";
    /// Every type.
    pub(crate) const ALL: [ResourceType; 3] = [
        ResourceType::Database,
        ResourceType::Storage,
        ResourceType::Compute,
    ];

    fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or_else(|| {
                Error::invalid(
                    "type",
                    format!("{value:?} is not a resource type: use {}", Self::NAMES),
                )
            })
    }

    /// The type's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResourceType::Database => "database",
            ResourceType::Storage => "storage",
            ResourceType::Compute => "compute",
        }
    }

    /// The spec keys the type takes: name, default, least, most.
    pub(crate) fn spec_keys(self) -> &'static [(&'static str, u64, u64, u64)] {
        match self {
            ResourceType::Database => &[("size_mb", 100, 1, 10_240)],
            ResourceType::Storage => &[("size_gb", 10, 1, 1_000)],
            ResourceType::Compute => &[("cpu", 1, 1, 64), ("memory_mb", 512, 128, 262_144)],
        }
    }
}

/// How many resources of each type a tenant may hold per service it
/// subscribes to, by the service's tier (`[quotas.basic]` and so on in the
/// configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Quotas {
    pub(crate) basic: Limits,
    pub(crate) standard: Limits,
    pub(crate) enterprise: Limits,
}

/// One tier's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    pub(crate) database: u64,
    pub(crate) storage: u64,
    pub(crate) compute: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            basic: Limits {
                database: 1,
                storage: 1,
                compute: 2,
            },
            standard: Limits {
                database: 3,
                storage: 5,
                compute: 8,
            },
            enterprise: Limits {
                database: 10,
                storage: 50,
                compute: 64,
            },
        }
    }
}

impl Quotas {
    /// How many resources of `kind` a service at `tier` may hold.
    pub(crate) fn limit(&self, tier: Tier, kind: ResourceType) -> u64 {
        let limits = match tier {
            Tier::Basic => self.basic,
            Tier::Standard => self.standard,
            Tier::Enterprise => self.enterprise,
        };
        match kind {
            ResourceType::Database => limits.database,
            ResourceType::Storage => limits.storage,
            ResourceType::Compute => limits.compute,
        }
    }
}

/// `resource` input as it arrives: `{"service": "billing", "type":
/// "compute", "spec": {"cpu": 2}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    service: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    spec: BTreeMap<String, serde_json::Value>,
}

/// A validated `resource` input, its spec complete with defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResourceInput {
    pub(crate) service: String,
    #[serde(rename = "type")]
    pub(crate) kind: ResourceType,
    pub(crate) spec: BTreeMap<String, u64>,
    /// The service's tier, as `check-subscription` found it.
    #[serde(default)]
    pub(crate) tier: Option<Tier>,
}

impl ResourceInput {
    /// The JSON object [`parse`](Self::parse) takes, as an OpenAPI schema
    /// still open for the caller's own fields (the route closes it).
    pub(crate) fn schema() -> ObjectBuilder {
        let service = super::input::service_schema();
        let kind = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("What to allocate"))
            .enum_values(Some(ResourceType::ALL.map(ResourceType::as_str)));
        let keys: Vec<String> = ResourceType::ALL
            .iter()
            .flat_map(|t| {
                t.spec_keys()
                    .iter()
                    .map(move |(key, default, least, most)| {
                        format!(
                            "{key} ({}: {least} to {most}, default {default})",
                            t.as_str()
                        )
                    })
            })
            .collect();
        let value = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(262_144));
        let spec = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(format!(
                "The resource's spec: whole numbers by key, each in its range; the keys \
                 the type takes only: {}",
                keys.join("; ")
            )))
            .additional_properties(Some(value));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("service", service)
            .required("service")
            .property("type", kind)
            .required("type")
            .property("spec", spec)
    }

    /// Parses and validates `input`: the service name, the type, and each
    /// spec key (known to the type, an integer in its range; a number or a
    /// string of digits, as the CLI's `--spec KEY=VALUE` gives it).
    pub(crate) fn parse(input: serde_json::Value) -> Result<Self> {
        let raw: RawResource = from_json(input)?;
        validate_service(&raw.service)?;
        let kind = ResourceType::parse(&raw.kind)?;
        let keys = kind.spec_keys();
        let mut spec = BTreeMap::new();
        for (key, value) in raw.spec {
            let Some((_, _, least, most)) = keys.iter().find(|(k, ..)| *k == key) else {
                let known: Vec<_> = keys.iter().map(|(k, ..)| *k).collect();
                return Err(Error::invalid(
                    "spec",
                    format!(
                        "{key:?} is not a {} spec key: use {}",
                        kind.as_str(),
                        known.join(", ")
                    ),
                ));
            };
            let number = match &value {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            };
            match number {
                Some(n) if (*least..=*most).contains(&n) => {
                    spec.insert(key, n);
                }
                _ => {
                    return Err(Error::invalid(
                        "spec",
                        format!("{key} must be a whole number from {least} to {most}, not {value}"),
                    ));
                }
            }
        }
        for (key, default, ..) in keys {
            spec.entry((*key).to_owned()).or_insert(*default);
        }
        Ok(ResourceInput {
            service: raw.service,
            kind,
            spec,
            tier: None,
        })
    }
}

/// The resource's id: its type, its service, and the request's id, so the
/// same request always names the same resource and no two requests one.
pub(crate) fn resource_id(input: &ResourceInput, request_id: RequestId) -> String {
    format!(
        "{}-{}-{}",
        input.kind.as_str(),
        input.service,
        request_id.as_uuid().simple()
    )
}

/// Where a database or storage resource lives in the tenant's region store.
pub(crate) fn resource_prefix(tenant: &TenantId, id: &str) -> ObjectPath {
    ObjectPath::from(format!("tenants/{tenant}/resources/{id}"))
}

/// The service's tier, from its subscription row, or `None` when the tenant
/// does not subscribe to it (or the subscription is not enabled).
async fn subscription(db: &mut TenantDb, service: &str) -> Result<Option<Tier>, StepError> {
    let Some(value) = db.setting(&format!("service.{service}")).await? else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    struct Subscription {
        tier: Tier,
        status: String,
    }
    let subscription: Subscription = serde_json::from_str(&value).map_err(StepError::permanent)?;
    Ok((subscription.status == "enabled").then_some(subscription.tier))
}

/// How many resources of `kind` the tenant holds for `service`, besides
/// resource `id` (a request's own reservation is never in its way).
async fn held(
    conn: &mut Conn,
    scope: Scope,
    tenant: &str,
    input: &ResourceInput,
    id: &str,
) -> Result<u64, StepError> {
    let sql = format!(
        "SELECT COUNT(*) FROM settings WHERE {}key LIKE 'resource.%' AND key <> $4 \
         AND {} = $2 AND {} = $3",
        scope.filter(""),
        scope.json_field("value", "service"),
        scope.json_field("value", "type"),
    );
    let own = format!("resource.{id}");
    let binds = [tenant, &input.service, input.kind.as_str(), &own];
    let count = conn.count(sql, &binds).await?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// The quota's refusal, naming the limit.
fn over_quota(tier: Tier, input: &ResourceInput, limit: u64, held: u64) -> String {
    format!(
        "quota exceeded: tier {} allows {limit} {} resource(s) per service, and service {} holds {held}",
        tier.as_str(),
        input.kind.as_str(),
        input.service
    )
}

/// Refuses, before anything is written, a `resource` request the tenant's
/// data already rules out: no subscription to the service (`service`), or
/// its quota full (a conflict naming the limit). The steps check both again,
/// the quota atomically with the reservation; this makes the common refusal
/// a clear answer instead of a failed run.
pub(crate) async fn precheck(
    data: &TenantData,
    quotas: &Quotas,
    placement: &Placement,
    input: &ResourceInput,
    request_id: RequestId,
) -> Result<()> {
    let refused = |e: StepError| Error::Backend {
        component: "tenant database",
        message: e.to_string(),
        transient: e.is_transient(),
        source: None,
    };
    let Some(mut db) = TenantDb::open_at(data, placement, request_id)
        .await
        .map_err(refused)?
    else {
        return Ok(()); // the run reports the data gone
    };
    let Some(tier) = subscription(&mut db, &input.service)
        .await
        .map_err(refused)?
    else {
        return Err(Error::invalid(
            "service",
            format!(
                "tenant {} does not subscribe to service {}: provision the service first",
                placement.tenant_id, input.service
            ),
        ));
    };
    let limit = quotas.limit(tier, input.kind);
    let (scope, tenant) = (db.conn.scope, db.tenant.clone());
    let id = resource_id(input, request_id);
    let held = held(&mut db.conn, scope, &tenant, input, &id)
        .await
        .map_err(refused)?;
    if held >= limit {
        return Err(Error::Conflict {
            kind: Entity::Quota,
            id: format!(
                "{}/{}/{}",
                placement.tenant_id,
                input.service,
                input.kind.as_str()
            ),
            reason: over_quota(tier, input, limit, held),
        });
    }
    Ok(())
}

/// `check-subscription`: the tenant subscribes to the service; records its tier.
pub(super) struct CheckSubscription {
    pub(super) data: TenantData,
}

#[async_trait]
impl Step<ResourceContext> for CheckSubscription {
    fn name(&self) -> &str {
        "check-subscription"
    }

    async fn execute(&self, ctx: &mut ResourceContext) -> Result<(), StepError> {
        let mut db = TenantDb::open(&self.data, ctx)
            .await?
            .ok_or_else(|| TenantDb::gone(ctx.tenant_id()))?;
        let tier = subscription(&mut db, &ctx.input.service).await?;
        let tier = tier.ok_or_else(|| {
            StepError::permanent(format!(
                "tenant {} does not subscribe to service {}",
                ctx.tenant_id(),
                ctx.input.service
            ))
        })?;
        ctx.input.tier = Some(tier);
        Ok(())
    }
}

/// `reserve-quota`: counts and records the resource in one transaction.
pub(super) struct ReserveQuota {
    pub(super) data: TenantData,
    pub(super) quotas: Quotas,
}

impl ReserveQuota {
    const ACTION: &'static str = "resource.reserved";
}

/// The tier `check-subscription` recorded.
fn tier(ctx: &ResourceContext) -> Result<Tier, StepError> {
    ctx.input
        .tier
        .ok_or_else(|| StepError::permanent("no tier: check-subscription did not run"))
}

#[async_trait]
impl Step<ResourceContext> for ReserveQuota {
    fn name(&self) -> &str {
        "reserve-quota"
    }

    async fn execute(&self, ctx: &mut ResourceContext) -> Result<(), StepError> {
        let tier = tier(ctx)?;
        let input = &ctx.input;
        let limit = self.quotas.limit(tier, input.kind);
        let id = resource_id(input, ctx.request_id());
        let record = json!({
            "service": input.service,
            "type": input.kind.as_str(),
            "spec": input.spec,
            "tier": tier.as_str(),
            "request_id": ctx.request_id(),
        });
        TenantDb::once(
            &self.data,
            ctx,
            Self::ACTION,
            async |conn, scope, tenant| {
                let held = held(conn, scope, tenant, input, &id).await?;
                if held >= limit {
                    return Err(StepError::permanent(over_quota(tier, input, limit, held)));
                }
                insert_setting(
                    conn,
                    scope,
                    tenant,
                    &format!("resource.{id}"),
                    &record.to_string(),
                )
                .await?;
                Ok(json!({ "resource": id }))
            },
        )
        .await
    }

    async fn compensate(&self, ctx: &mut ResourceContext) -> Result<(), StepError> {
        let id = resource_id(&ctx.input, ctx.request_id());
        TenantDb::undo(
            &self.data,
            ctx,
            Self::ACTION,
            async |conn, scope, tenant, _| {
                delete_setting(conn, scope, tenant, &format!("resource.{id}")).await
            },
        )
        .await
    }
}

async fn insert_setting(
    conn: &mut Conn,
    scope: Scope,
    tenant: &str,
    key: &str,
    value: &str,
) -> Result<(), StepError> {
    let insert = format!(
        "INSERT INTO settings ({}key, value) VALUES ({}$2, {})",
        scope.column(),
        scope.value(),
        scope.json("$3"),
    );
    conn.execute(insert, &[tenant, key, value]).await.map(drop)
}

async fn delete_setting(
    conn: &mut Conn,
    scope: Scope,
    tenant: &str,
    key: &str,
) -> Result<(), StepError> {
    let delete = format!("DELETE FROM settings WHERE {}key = $2", scope.filter(""));
    conn.execute(delete, &[tenant, key]).await.map(drop)
}

/// `allocate`: the resource itself.
pub(super) struct Allocate {
    pub(super) data: TenantData,
    pub(super) storage: Arc<ObjectStoreInitializer>,
    /// Where a new database file is built before it goes to the store.
    pub(super) scratch: PathBuf,
}

impl Allocate {
    const COMPUTE_ACTION: &'static str = "resource.compute_allocated";

    fn store(&self, ctx: &ResourceContext) -> Result<Arc<dyn ObjectStore>, StepError> {
        self.storage
            .store(&ctx.placement().region)
            .cloned()
            .map_err(StepError::permanent)
    }

    /// A fresh SQLite database for the resource, as bytes: its `resource`
    /// table says whose it is.
    async fn database_image(&self, ctx: &ResourceContext, id: &str) -> Result<Vec<u8>, StepError> {
        std::fs::create_dir_all(&self.scratch).map_err(StepError::transient)?;
        // Unique per attempt: two attempts of one request (a retry racing
        // a recovery) never build into each other's file.
        let path = self
            .scratch
            .join(format!("{id}.{}.sqlite", RequestId::new()));
        // A leftover of an attempt cut short is rebuilt from scratch.
        let _ = std::fs::remove_file(&path);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .map_err(step_error)?;
        sqlx::query("CREATE TABLE resource (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .execute(&mut conn)
            .await
            .map_err(step_error)?;
        for (key, value) in [
            ("tenant_id", ctx.tenant_id().to_string()),
            ("service", ctx.input.service.clone()),
            ("resource_id", id.to_owned()),
            ("spec", json!(ctx.input.spec).to_string()),
        ] {
            sqlx::query("INSERT INTO resource (key, value) VALUES (?1, ?2)")
                .bind(key)
                .bind(value)
                .execute(&mut conn)
                .await
                .map_err(step_error)?;
        }
        conn.close().await.map_err(step_error)?;
        let bytes = std::fs::read(&path).map_err(StepError::transient)?;
        let _ = std::fs::remove_file(&path);
        Ok(bytes)
    }

    /// Puts what `bytes` makes at `path` unless something is there already
    /// (a retried step keeps what its first attempt put, and what a service
    /// wrote since); `bytes` runs only when the path is free.
    async fn put_once(
        store: &dyn ObjectStore,
        path: &ObjectPath,
        bytes: impl AsyncFnOnce() -> Result<Vec<u8>, StepError>,
    ) -> Result<(), StepError> {
        use provisioning_storage::object_store::Error as StoreError;
        match store.head(path).await {
            Ok(_) => return Ok(()),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(StepError::transient(e)),
        }
        store
            .put(path, PutPayload::from(bytes().await?))
            .await
            .map_err(StepError::transient)?;
        Ok(())
    }
}

#[async_trait]
impl Step<ResourceContext> for Allocate {
    fn name(&self) -> &str {
        "allocate"
    }

    async fn execute(&self, ctx: &mut ResourceContext) -> Result<(), StepError> {
        let id = resource_id(&ctx.input, ctx.request_id());
        let prefix = resource_prefix(ctx.tenant_id(), &id);
        match ctx.input.kind {
            ResourceType::Database => {
                let store = self.store(ctx)?;
                let path = prefix.clone().join("database.sqlite");
                Self::put_once(store.as_ref(), &path, async || {
                    self.database_image(ctx, &id).await
                })
                .await
            }
            ResourceType::Storage => {
                let store = self.store(ctx)?;
                let spec = json!({ "resource_id": id, "spec": ctx.input.spec }).to_string();
                let path = prefix.clone().join(".resource.json");
                Self::put_once(store.as_ref(), &path, async || Ok(spec.into_bytes())).await
            }
            ResourceType::Compute => {
                let spec = json!(ctx.input.spec).to_string();
                TenantDb::once(
                    &self.data,
                    ctx,
                    Self::COMPUTE_ACTION,
                    async |conn, scope, tenant| {
                        insert_setting(conn, scope, tenant, &format!("compute.{id}"), &spec)
                            .await?;
                        Ok(json!({ "compute": id }))
                    },
                )
                .await
            }
        }
    }

    async fn compensate(&self, ctx: &mut ResourceContext) -> Result<(), StepError> {
        let id = resource_id(&ctx.input, ctx.request_id());
        match ctx.input.kind {
            ResourceType::Database | ResourceType::Storage => {
                let store = self.store(ctx)?;
                let prefix = resource_prefix(ctx.tenant_id(), &id);
                let objects: Vec<_> = store
                    .list(Some(&prefix))
                    .map_ok(|meta| meta.location)
                    .try_collect()
                    .await
                    .map_err(StepError::transient)?;
                for path in objects {
                    match store.delete(&path).await {
                        Ok(())
                        | Err(provisioning_storage::object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(StepError::transient(e)),
                    }
                }
                Ok(())
            }
            ResourceType::Compute => {
                TenantDb::undo(
                    &self.data,
                    ctx,
                    Self::COMPUTE_ACTION,
                    async |conn, scope, tenant, _| {
                        delete_setting(conn, scope, tenant, &format!("compute.{id}")).await
                    },
                )
                .await
            }
        }
    }
}

/// `record-billing`: the billing record, which is the step's own marker row.
pub(super) struct RecordBilling {
    pub(super) data: TenantData,
}

impl RecordBilling {
    const ACTION: &'static str = "resource.billed";
}

#[async_trait]
impl Step<ResourceContext> for RecordBilling {
    fn name(&self) -> &str {
        "record-billing"
    }

    async fn execute(&self, ctx: &mut ResourceContext) -> Result<(), StepError> {
        let tier = tier(ctx)?;
        let record = json!({
            "resource": resource_id(&ctx.input, ctx.request_id()),
            "service": ctx.input.service,
            "type": ctx.input.kind.as_str(),
            "tier": tier.as_str(),
            "spec": ctx.input.spec,
        });
        TenantDb::once(&self.data, ctx, Self::ACTION, async |_, _, _| Ok(record)).await
    }

    async fn compensate(&self, ctx: &mut ResourceContext) -> Result<(), StepError> {
        TenantDb::undo(&self.data, ctx, Self::ACTION, async |_, _, _, _| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_validated_field_by_field_and_defaults_fill_the_spec() {
        let ok = ResourceInput::parse(json!({
            "service": "billing", "type": "compute", "spec": {"cpu": "4"}
        }))
        .unwrap();
        assert_eq!(ok.kind, ResourceType::Compute);
        assert_eq!(ok.spec["cpu"], 4);
        assert_eq!(ok.spec["memory_mb"], 512);

        let cases = [
            (json!({"service": "billing", "type": "gpu"}), "type"),
            (json!({"service": "Billing", "type": "storage"}), "service"),
            (
                json!({"service": "billing", "type": "storage", "spec": {"cpu": 1}}),
                "spec",
            ),
            (
                json!({"service": "billing", "type": "compute", "spec": {"cpu": 0}}),
                "spec",
            ),
            (
                json!({"service": "billing", "type": "compute", "spec": {"cpu": "x"}}),
                "spec",
            ),
            (
                json!({"service": "billing", "type": "compute", "size": 1}),
                "input",
            ),
            (json!([1]), "input"),
        ];
        for (input, field) in cases {
            match ResourceInput::parse(input.clone()) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{input}"),
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_same_request_names_the_same_resource() {
        let input = ResourceInput::parse(json!({"service": "billing", "type": "storage"})).unwrap();
        let request = RequestId::new();
        let id = resource_id(&input, request);
        assert_eq!(id, resource_id(&input, request));
        assert!(id.starts_with("storage-billing-"), "{id}");
        assert_ne!(id, resource_id(&input, RequestId::new()));
    }

    /// Past the early refusal (two requests checked at once, say), the
    /// reservation still holds the line: the run fails at `reserve-quota`,
    /// naming the limit, and nothing is allocated.
    #[tokio::test]
    async fn the_reservation_refuses_what_the_early_check_let_through() {
        use provisioning_core::{RequestStatus, TenantRequest};
        let dir = tempfile::tempdir().unwrap();
        let hybrid = crate::wiring::hybrid(dir.path(), crate::wiring::Release::Current, None)
            .await
            .unwrap();
        let acme: TenantId = "acme".parse().unwrap();
        let request = TenantRequest::new(
            acme.clone(),
            "premium".parse().unwrap(),
            "eu-west".parse().unwrap(),
        );
        hybrid.orchestrator.create(request).await.unwrap();
        let service = json!({ "service": "billing", "tier": "basic" });
        let receipt = hybrid
            .provisioner
            .provision(super::super::SERVICE, &acme, RequestId::new(), service)
            .await
            .unwrap();
        assert_eq!(receipt.status, RequestStatus::Succeeded);
        let input =
            || ResourceInput::parse(json!({ "service": "billing", "type": "storage" })).unwrap();
        // Straight to the orchestrator, as a second process would get there.
        let first = hybrid
            .orchestrator
            .run_workflow(RESOURCE, &acme, RequestId::new(), input())
            .await
            .unwrap();
        assert_eq!(first.status, RequestStatus::Succeeded);
        let second = hybrid
            .orchestrator
            .run_workflow(RESOURCE, &acme, RequestId::new(), input())
            .await
            .unwrap();
        assert_eq!(second.status, RequestStatus::Failed);
        let failure = second.failure.unwrap();
        assert_eq!(failure.step, "reserve-quota");
        assert!(
            failure
                .reason
                .contains("tier basic allows 1 storage resource(s)"),
            "{failure:?}"
        );
        let root = dir.path().join("storage/eu-west/tenants/acme/resources");
        let allocated: Vec<_> = std::fs::read_dir(root).unwrap().collect();
        assert_eq!(allocated.len(), 1, "only the first run's storage");
    }

    #[test]
    fn the_built_in_config_has_the_default_quotas() {
        let config: toml::Value = toml::from_str(crate::config::DEFAULT).unwrap();
        let quotas: Quotas = config["quotas"].clone().try_into().unwrap();
        assert_eq!(quotas, Quotas::default());
    }

    #[test]
    fn quotas_grow_with_the_tier() {
        let quotas = Quotas::default();
        for kind in ResourceType::ALL {
            assert!(quotas.limit(Tier::Basic, kind) <= quotas.limit(Tier::Standard, kind));
            assert!(quotas.limit(Tier::Standard, kind) <= quotas.limit(Tier::Enterprise, kind));
        }
    }
}
