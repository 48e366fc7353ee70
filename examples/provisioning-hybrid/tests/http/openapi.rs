//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document generated from the
//! handlers, served without the token. Every route the router serves is in
//! it with its method, every operation lists the errors it can answer with
//! the one error schema, the protected ones name the bearer scheme, and the
//! schemas say what the handlers take and give.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::server::{Server, send};

const TOKEN: &str = "t0ken-of-the-openapi-test";

/// A route of the router: method, path (as the document writes it), whether
/// the token protects it, and the error statuses it can answer.
struct Route {
    method: &'static str,
    path: &'static str,
    protected: bool,
    errors: &'static [u16],
}

/// Every route `http::router` serves.
const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/api/v1/tenants",
        protected: true,
        errors: &[400, 401, 409, 413, 415, 500, 503],
    },
    Route {
        method: "get",
        path: "/api/v1/tenants/{id}",
        protected: true,
        errors: &[400, 401, 404, 500, 503],
    },
    Route {
        method: "delete",
        path: "/api/v1/tenants/{id}",
        protected: true,
        errors: &[400, 401, 404, 409, 413, 415, 500, 503],
    },
    Route {
        method: "post",
        path: "/api/v1/tenants/{id}/suspend",
        protected: true,
        errors: &[400, 401, 404, 409, 413, 415, 500, 503],
    },
    Route {
        method: "post",
        path: "/api/v1/tenants/{id}/resume",
        protected: true,
        errors: &[400, 401, 404, 409, 413, 415, 500, 503],
    },
    Route {
        method: "post",
        path: "/api/v1/tenants/{id}/plan",
        protected: true,
        errors: &[400, 401, 404, 409, 413, 415, 422, 500, 503],
    },
    Route {
        method: "post",
        path: "/api/v1/tenants/{id}/move",
        protected: true,
        errors: &[400, 401, 404, 409, 413, 415, 422, 500, 503],
    },
    Route {
        method: "post",
        path: "/api/v1/provisioning/tenant",
        protected: true,
        errors: &[400, 401, 409, 413, 415, 500, 503],
    },
    Route {
        method: "get",
        path: "/api/v1/provisioning/{request_id}/status",
        protected: true,
        errors: &[400, 401, 404, 500, 503],
    },
    Route {
        method: "post",
        path: "/api/v1/provisioning/{workflow}",
        protected: true,
        errors: &[400, 401, 404, 409, 413, 415, 500, 503],
    },
    Route {
        method: "get",
        path: "/api/v1/fleet/status",
        protected: true,
        errors: &[401, 500, 503],
    },
    Route {
        method: "get",
        path: "/api/v1/fleet/drift",
        protected: true,
        errors: &[400, 401, 404, 500, 503],
    },
    Route {
        method: "get",
        path: "/api/v1/openapi.json",
        protected: false,
        errors: &[],
    },
    Route {
        method: "get",
        path: "/healthz",
        protected: false,
        errors: &[],
    },
    Route {
        method: "get",
        path: "/readyz",
        protected: false,
        errors: &[503],
    },
    Route {
        method: "get",
        path: "/metrics",
        protected: false,
        errors: &[],
    },
];

/// The document, fetched without the token from a server that has one.
async fn document(server: &Server) -> Value {
    let response = server
        .anon(Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

/// The schema named `name` in the document's components.
fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

/// The names in `value`, an array of strings.
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_every_route_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--token", TOKEN], &[]);
    let doc = document(&server).await;

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http", "{bearer}");
    assert_eq!(bearer["scheme"], "bearer", "{bearer}");

    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    let mut served: Vec<String> = ROUTES
        .iter()
        .map(|r| format!("{} {}", r.method.to_uppercase(), r.path))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(
        documented, served,
        "the document's operations are the router's"
    );

    for route in ROUTES {
        let name = format!("{} {}", route.method.to_uppercase(), route.path);
        let operation = &doc["paths"][route.path][route.method];
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{name}: no success response"
        );
        for status in route.errors {
            let response = responses
                .get(&status.to_string())
                .unwrap_or_else(|| panic!("{name}: {status} is not documented"));
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorResponse",
                "{name}: {status} must carry the error body"
            );
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
            );
        }
        for status in responses.keys().filter(|s| !s.starts_with('2')) {
            let status: u16 = status.parse().unwrap();
            assert!(
                route.errors.contains(&status),
                "{name}: documents {status}, which the test does not expect"
            );
        }
        let security = operation.get("security");
        if route.protected {
            assert_eq!(security, Some(&json!([{ "bearer": [] }])), "{name}");
        } else {
            assert_eq!(security, None, "{name} needs no token");
        }
    }

    // Every listed route is one the server routes (not its JSON 404 for an
    // unknown path), and the protected ones refuse a request without the token.
    for route in ROUTES.iter().filter(|r| r.protected) {
        let path = route
            .path
            .replace("{id}", "acme")
            .replace("{request_id}", "0190a5c4-0000-7000-8000-0000000000aa")
            .replace("{workflow}", "service");
        let method = Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
        let (status, body) = send(server.anon(method, &path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schemas_are_what_the_handlers_take_and_give() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let doc = document(&server).await;

    // The create body: its required fields, nothing else accepted, and the
    // configured plans and regions as the only values.
    let create = schema(&doc, "CreateBody");
    let required = strings(&create["required"]);
    for field in ["tenant_id", "plan", "region"] {
        assert!(
            required.contains(&field),
            "{field} must be required: {create}"
        );
    }
    assert!(!required.contains(&"request_id"), "{create}");
    assert_eq!(create["additionalProperties"], false, "{create}");
    let plans = strings(&create["properties"]["plan"]["enum"]);
    for plan in ["free", "standard", "premium", "regulated"] {
        assert!(plans.contains(&plan), "{plans:?}");
    }
    assert_eq!(
        strings(&create["properties"]["region"]["enum"]),
        ["eu-west", "us-east"]
    );
    let tenant_id = schema(&doc, "TenantId");
    assert_eq!(tenant_id["type"], "string");
    assert_eq!(tenant_id["minLength"], 3);
    assert_eq!(tenant_id["maxLength"], 63);

    // The one error shape, with its stable codes.
    let envelope = schema(&doc, "ErrorResponse");
    assert_eq!(strings(&envelope["required"]), ["error"]);
    let body = schema(&doc, "ErrorBody");
    assert_eq!(strings(&body["required"]), ["code", "message"]);
    let codes = strings(&schema(&doc, "ErrorCode")["enum"]);
    for code in [
        "invalid_input",
        "invalid_body",
        "unauthorized",
        "not_found",
        "conflict",
        "illegal_transition",
        "tenant_not_active",
        "payload_too_large",
        "unsupported_media_type",
        "unavailable",
        "internal",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }

    // Receipts: the states serde writes, the link, and the 202's Location.
    assert_eq!(
        strings(&schema(&doc, "RequestStatus")["enum"]),
        ["running", "succeeded", "failed", "compensation_failed"]
    );
    let receipt = schema(&doc, "Receipt");
    for field in ["request_id", "tenant_id", "run_id", "status", "failure"] {
        assert!(strings(&receipt["required"]).contains(&field), "{receipt}");
    }
    let accepted = &doc["paths"]["/api/v1/tenants"]["post"]["responses"]["202"];
    assert!(accepted["headers"]["Location"].is_object(), "{accepted}");
    assert_eq!(
        accepted["links"]["status"]["operationId"], "status",
        "{accepted}"
    );
    let states = strings(&schema(&doc, "TenantState")["enum"]);
    assert!(
        states.contains(&"active") && states.contains(&"deleted"),
        "{states:?}"
    );

    // What the server answers has every field the document requires.
    let answer = server.create("acme", "free", "eu-west").await;
    let linked = schema(&doc, "LinkedReceipt");
    let own = linked["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|part| part.get("properties").is_some())
        .unwrap();
    for field in strings(&receipt["required"])
        .into_iter()
        .chain(strings(&own["required"]))
    {
        assert!(answer.get(field).is_some(), "{field} missing from {answer}");
    }
    let record = server.tenant("acme").await;
    for field in strings(&schema(&doc, "TenantRecord")["required"]) {
        assert!(record.get(field).is_some(), "{field} missing from {record}");
    }
    assert!(
        states.contains(&record["state"].as_str().unwrap()),
        "{record}"
    );
}
