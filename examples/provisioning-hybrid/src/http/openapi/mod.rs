//! (5) The API's OpenAPI 3.1 document, generated from the code: each
//! handler's `#[utoipa::path]` (parameters, body, every status it answers),
//! the schemas the SDK's types and the API's own derive, and the bearer
//! scheme; then the plans, regions and shards of the configuration the
//! server runs with, as the values its request bodies take. Served at
//! `GET /api/v1/openapi.json`; `scripts/fuzz-api.sh` fuzzes the server
//! against it.

pub(crate) mod responses;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::accept::Answer;
use super::error::Envelope;
use super::routes::{self, fleet, mobility, provisioning, tenants};
use crate::config::PlacementConfig;

/// The name of the bearer security scheme in the document.
const BEARER: &str = "bearer";

/// The API's document: its operations, and the schemas they reference.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "provisioning-hybrid",
        description = "The provisioning SDK's example API: tenants (create, suspend, resume, \
            delete, change plan, move), generic workflows, request receipts, the fleet. \
            Requests that start a run answer 202 with a status link, or 200 with the final \
            receipt with `?wait=true`. Every error is `{\"error\": {\"code\", \"message\", \
            \"field\"?, \"rule\"?}}`. With a token (`serve --token`), every operation that \
            names the `bearer` scheme needs `Authorization: Bearer <token>`.",
    ),
    paths(
        tenants::create_tenant,
        tenants::provision_tenant,
        tenants::get_tenant,
        tenants::delete_tenant,
        tenants::suspend,
        tenants::resume,
        mobility::change_plan,
        mobility::move_tenant,
        provisioning::status,
        provisioning::provision,
        fleet::fleet_status,
        fleet::fleet_drift,
        openapi_json,
        routes::healthz,
        routes::readyz,
        routes::metrics,
    ),
    // What only the shared responses and the path parameters name: the
    // operations' own bodies are collected from their annotations.
    components(schemas(Answer, Envelope, provisioning::WorkflowName)),
    modifiers(&BearerScheme, &OptionalBodies),
    tags(
        (name = "tenants", description = "The tenant lifecycle"),
        (name = "provisioning", description = "Request receipts and the generic workflows"),
        (name = "fleet", description = "Schema roll-outs and drift (read only)"),
        (name = "operations", description = "Liveness, readiness, metrics and this document; no token needed"),
    ),
)]
pub(crate) struct ApiDoc;

/// Declares the bearer scheme the protected operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The token `serve` was started with (`--token` or PROVISIONING_HYBRID_TOKEN); \
                 without one, the API is open",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// An optional request body (`OptionalJson`) may be left out or empty, but
/// a JSON `null` is not the body's object: utoipa renders `content =
/// Option<T>` as `oneOf: [null, T]`, which this unwraps to `T`. The body
/// stays optional (`required` unset).
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let operations = openapi.paths.paths.values_mut().flat_map(|item| {
            [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
        });
        for operation in operations {
            let Some(body) = &mut operation.request_body else {
                continue;
            };
            if body.required == Some(Required::True) {
                continue;
            }
            for content in body.content.values_mut() {
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &mut content.schema {
                    one_of.items.retain(|item| !is_null(item));
                    if one_of.items.len() == 1 {
                        content.schema = one_of.items.pop();
                    }
                }
            }
        }
    }
}

/// Whether `schema` is `{"type": "null"}`.
fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object))
        if object.schema_type == SchemaType::Type(Type::Null))
}

/// The document of a server placing tenants by `config`: [`ApiDoc`], with
/// the plans, regions and shards it knows as the only values of the body
/// fields that name one (a create with another plan is refused: the
/// document says so). The schemas of the answers keep the general rule,
/// since a tenant placed under an earlier configuration keeps its names.
fn document(config: &PlacementConfig) -> utoipa::openapi::OpenApi {
    let mut openapi = ApiDoc::openapi();
    let plans: Vec<&str> = config.policy.plans.keys().map(String::as_str).collect();
    let regions: Vec<&str> = config
        .directory
        .regions()
        .into_iter()
        .map(|r| r.as_str())
        .collect();
    let shards: Vec<&str> = config.directory.iter().map(|s| s.id().as_str()).collect();
    let configured = [
        ("CreateBody", "plan", "A configured plan", &plans),
        (
            "CreateBody",
            "region",
            "A region of the shard map",
            &regions,
        ),
        (
            "PlanBody",
            "plan",
            "A configured plan, not the tenant's own",
            &plans,
        ),
        ("MoveBody", "shard", "A shard of the shard map", &shards),
    ];
    let schemas = &mut openapi
        .components
        .get_or_insert_with(Default::default)
        .schemas;
    for (body, field, description, values) in configured {
        if let Some(RefOr::T(Schema::Object(object))) = schemas.get_mut(body) {
            let choice = ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
                .enum_values(Some(values.iter().copied()));
            object.properties.insert(field.to_owned(), choice.into());
        }
    }
    openapi
}

/// `GET /api/v1/openapi.json`: this API's OpenAPI 3.1 document (no token needed).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
pub(crate) async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.document.clone(),
    )
        .into_response()
}

/// The document as the bytes the endpoint serves.
///
/// # Errors
/// Serializing it fails (it holds nothing that could).
pub(crate) fn serve_bytes(config: &PlacementConfig) -> serde_json::Result<Bytes> {
    let mut json = serde_json::to_value(document(config))?;
    camel_case_links(&mut json);
    serde_json::to_vec(&json).map(Bytes::from)
}

/// Names the fields of every response link as OpenAPI does: utoipa 5
/// serializes its `Link` with the Rust names (`operation_id`, fixed in
/// utoipa 6), which no client reads as the link's target.
fn camel_case_links(document: &mut serde_json::Value) {
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(serde_json::Value::as_object_mut);
    for link in links {
        for (rust, openapi) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(rust) {
                link.insert(openapi.to_owned(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every `$ref` under `value` names a schema of `document`.
    fn assert_refs_resolve(document: &serde_json::Value, value: &serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                    let name = target.strip_prefix("#/components/schemas/").unwrap();
                    assert!(
                        document["components"]["schemas"].get(name).is_some(),
                        "{target} is not in the document"
                    );
                }
                map.values().for_each(|v| assert_refs_resolve(document, v));
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|v| assert_refs_resolve(document, v));
            }
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_names_its_security() {
        let config = crate::config::load().unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&serve_bytes(&config).unwrap()).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(
            json["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        let health = &json["paths"]["/healthz"]["get"];
        assert!(health.get("security").is_none(), "{health}");
        let suspend = &json["paths"]["/api/v1/tenants/{id}/suspend"]["post"]["requestBody"];
        assert_ne!(suspend["required"], true, "{suspend}");
        assert_eq!(
            suspend["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/RequestIdBody",
            "an optional body is an object or nothing, never null: {suspend}"
        );
        let create = &json["components"]["schemas"]["CreateBody"]["properties"];
        let plans = create["plan"]["enum"].as_array().unwrap();
        assert!(plans.contains(&"premium".into()), "{create}");
        let regions = create["region"]["enum"].as_array().unwrap();
        assert!(regions.contains(&"eu-west".into()), "{create}");
        let record = &json["components"]["schemas"]["TenantRecord"]["properties"];
        assert_eq!(record["plan"]["$ref"], "#/components/schemas/PlanName");
        assert_refs_resolve(&json, &json);
        let link = &json["paths"]["/api/v1/tenants"]["post"]["responses"]["202"]["links"]["status"];
        assert_eq!(link["operationId"], "status", "{link}");
        assert_eq!(
            link["parameters"]["request_id"],
            "$response.body#/request_id"
        );
    }
}
