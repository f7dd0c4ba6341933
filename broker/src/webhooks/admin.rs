//! The admin API for webhook endpoints: register, list, read, delete, and the delivery log.
//!
//! Like credentials: admin scope on every cluster (an endpoint hears about every cluster),
//! audited before the change is made, the signing secret shown once, in the answer that
//! creates the endpoint.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use kubeline_shared::audit::{AuditAction, AuditDecision, AuditOutcome};
use kubeline_shared::webhooks::{
    CreateWebhookRequest, DeliveryInfo, DeliveryList, EventType, MAX_DESCRIPTION_CHARS,
    MAX_EVENTS_PER_ENDPOINT, WebhookCreated, WebhookInfo, WebhookList,
};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use super::{MAX_ENDPOINTS, sign, target};
use crate::AppState;
use crate::audit::{self, Audited};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::middleware::RequestContext;
use crate::store::{DeliveryRecord, WebhookRecord};

/// Default and largest page of the delivery log.
const DEFAULT_DELIVERIES: usize = 50;
const MAX_DELIVERIES: usize = 200;
/// Longest endpoint id looked up (`wh_` + 16 hex digits; anything else is not one).
const MAX_ID_LEN: usize = 64;

fn info(record: &WebhookRecord) -> WebhookInfo {
    WebhookInfo {
        id: record.id.clone(),
        url: record.url.clone(),
        events: record.events.clone(),
        description: record.description.clone(),
        created_at: record.created_at,
        created_by: record.created_by.clone(),
        disabled_at: record.disabled_at,
        disabled_reason: record.disabled_reason.clone(),
        pending_deliveries: record.pending,
        dropped_events: record.dropped,
    }
}

fn delivery_info(d: DeliveryRecord) -> DeliveryInfo {
    DeliveryInfo {
        payload: serde_json::from_str(&d.body).unwrap_or(serde_json::Value::String(d.body)),
        id: d.id,
        event_type: d.event_type,
        status: d.status,
        attempts: d.attempts,
        created_at: d.created_at,
        next_attempt_at: d.next_attempt_at,
        give_up_at: d.give_up_at,
        last_status_code: d.last_status_code,
        last_error: d.last_error,
        history: d.history,
    }
}

/// The event types of a request, each known and named once.
fn event_types(events: Option<Vec<String>>) -> ApiResult<Vec<EventType>> {
    let Some(events) = events else {
        return Err(ApiError::missing_field("events"));
    };
    if events.is_empty() || events.len() > MAX_EVENTS_PER_ENDPOINT {
        return Err(ApiError::bad_request(
            format!(
                "Invalid events: give 1 to {MAX_EVENTS_PER_ENDPOINT} event types, each once, \
                 from: {}",
                EventType::names()
            ),
            json!({ "field": "events", "code": "invalid_value", "known": EventType::ALL }),
        ));
    }
    let mut out = Vec::with_capacity(events.len());
    for (i, name) in events.iter().enumerate() {
        let Some(t) = EventType::parse(name) else {
            return Err(ApiError::bad_request(
                format!(
                    "Invalid events[{i}]: unknown event type {:?}; use one of: {}",
                    kubeline_shared::webhooks::truncate(name, 64),
                    EventType::names()
                ),
                json!({
                    "field": format!("events[{i}]"),
                    "code": "unknown_event_type",
                    "known": EventType::ALL,
                }),
            ));
        };
        if out.contains(&t) {
            return Err(ApiError::bad_request(
                format!("Invalid events[{i}]: {name} is listed twice; name each type once"),
                json!({ "field": format!("events[{i}]"), "code": "duplicate_event_type" }),
            ));
        }
        out.push(t);
    }
    Ok(out)
}

fn new_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    format!("wh_{}", hex::encode(bytes))
}

fn too_many() -> ApiError {
    ApiError::bad_request(
        format!(
            "At most {MAX_ENDPOINTS} webhook endpoints may be registered; delete one \
             (DELETE /admin/webhooks/{{id}}) before registering another"
        ),
        json!({ "field": "url", "code": "too_many_webhooks", "limit": MAX_ENDPOINTS }),
    )
}

/// Register a webhook endpoint (admin).
///
/// Events of the listed types are POSTed to `url` in the Standard Webhooks format, signed with
/// the secret in this answer (shown once; the broker keeps it to sign). Deliveries are retried
/// with backoff for `--webhook-retry-seconds` (default a day); an endpoint that answers 410
/// Gone is disabled.
#[utoipa::path(post, path = "/admin/webhooks", tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Registered; `secret` signs its deliveries, shown once.", body = WebhookCreated),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Json(req): Json<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Extension<Audited>, Json<WebhookCreated>)> {
    caller.require_admin()?;
    let url = match req.url.as_deref().map(str::trim) {
        Some(u) if !u.is_empty() => u.to_owned(),
        _ => return Err(ApiError::missing_field("url")),
    };
    let url = target::check_form(&url).map_err(|e| ApiError::invalid_field("url", e.0))?;
    let events = event_types(req.events)?;
    if let Some(description) = &req.description
        && description.chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(ApiError::invalid_field(
            "description",
            format!("Invalid description: use at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    let webhooks = &state.webhooks;
    target::check_addresses(&url, webhooks.args().allow_private)
        .await
        .map_err(|e| ApiError::invalid_field("url", e.0))?;
    let store = webhooks.store();
    if store.list_webhooks().await?.len() >= MAX_ENDPOINTS {
        return Err(too_many());
    }
    let secret = sign::new_secret();
    let record = WebhookRecord {
        id: new_id(),
        url: url.to_string(),
        events,
        description: req.description.filter(|d| !d.is_empty()),
        secret: secret.clone(),
        created_at: Utc::now(),
        created_by: Some(caller.credential_id.clone()),
        disabled_at: None,
        disabled_reason: None,
        pending: 0,
        dropped: 0,
    };
    // Recorded before it exists: no endpoint without its record.
    let mut event = audit::request_event(
        &ctx,
        Some(&caller),
        AuditAction::WebhookCreate,
        AuditOutcome::Accepted,
    );
    event.decision = Some(AuditDecision::Allowed);
    event.target = Some(record.id.clone());
    event.reason = Some(format!(
        "{} for {}",
        target::redacted(&url),
        record
            .events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(",")
    ));
    state.audit.record(event.clone()).await?;
    if !store.put_webhook(&record, MAX_ENDPOINTS).await? {
        // Another admin registered the last one meanwhile.
        event.outcome = AuditOutcome::Refused;
        event.decision = Some(AuditDecision::Refused);
        event.reason = Some(format!("at most {MAX_ENDPOINTS} webhook endpoints"));
        audit::record_after(&state.audit, event).await;
        return Err(too_many());
    }
    info!(webhook = %record.id, url = %target::redacted(&url), "webhook endpoint registered");
    Ok((
        StatusCode::CREATED,
        Extension(Audited),
        Json(WebhookCreated {
            secret,
            info: info(&record),
        }),
    ))
}

/// List webhook endpoints (admin). Never their secrets.
#[utoipa::path(get, path = "/admin/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "Every endpoint, oldest first.", body = WebhookList),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<WebhookList>> {
    caller.require_admin()?;
    let all = state.webhooks.store().list_webhooks().await?;
    Ok(Json(WebhookList {
        webhooks: all.iter().map(info).collect(),
    }))
}

/// An endpoint by id, or 404.
async fn load(state: &AppState, id: &str) -> ApiResult<WebhookRecord> {
    let not_found = || {
        ApiError::not_found(format!(
            "Webhook endpoint not found: {}",
            kubeline_shared::webhooks::truncate(id, MAX_ID_LEN)
        ))
    };
    if id.len() > MAX_ID_LEN || !id.starts_with("wh_") {
        return Err(not_found());
    }
    state
        .webhooks
        .store()
        .get_webhook(id)
        .await?
        .ok_or_else(not_found)
}

/// Read a webhook endpoint (admin): its state and counts, never its secret.
#[utoipa::path(get, path = "/admin/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`id` of the endpoint.", example = "wh_7f3a9c1e2b4d6f80")),
    responses(
        (status = 200, description = "The endpoint.", body = WebhookInfo),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
) -> ApiResult<Json<WebhookInfo>> {
    caller.require_admin()?;
    Ok(Json(info(&load(&state, &webhook_id).await?)))
}

/// Delete a webhook endpoint (admin).
///
/// Nothing more is delivered to it; its pending deliveries and its delivery log go with it.
/// Answers the endpoint as it was.
#[utoipa::path(delete, path = "/admin/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`id` of the endpoint.", example = "wh_7f3a9c1e2b4d6f80")),
    responses(
        (status = 200, description = "Deleted.", body = WebhookInfo),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    Path(webhook_id): Path<String>,
) -> ApiResult<(Extension<Audited>, Json<WebhookInfo>)> {
    caller.require_admin()?;
    let record = load(&state, &webhook_id).await?;
    let mut event = audit::request_event(
        &ctx,
        Some(&caller),
        AuditAction::WebhookDelete,
        AuditOutcome::Accepted,
    );
    event.decision = Some(AuditDecision::Allowed);
    event.target = Some(record.id.clone());
    state.audit.record(event).await?;
    let deleted = state
        .webhooks
        .store()
        .delete_webhook(&record.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Webhook endpoint not found: {webhook_id}")))?;
    info!(webhook = %deleted.id, "webhook endpoint deleted");
    Ok((Extension(Audited), Json(info(&deleted))))
}

/// Query of the delivery log. Values arrive as strings and are checked in the handler, so that
/// the answer can say what is allowed.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Most deliveries to return, newest first (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, example = 50)]
    limit: Option<String>,
}

/// The delivery log of a webhook endpoint (admin).
///
/// Newest first: every pending delivery (with its next attempt) and the newest finished ones
/// (100 are kept per endpoint), each with its attempts' status codes and errors and the body
/// sent.
#[utoipa::path(get, path = "/admin/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "`id` of the endpoint.", example = "wh_7f3a9c1e2b4d6f80"),
        DeliveryQuery),
    responses(
        (status = 200, description = "Its deliveries, newest first.", body = DeliveryList),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(webhook_id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<DeliveryList>> {
    caller.require_admin()?;
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_DELIVERIES,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_DELIVERIES).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "limit",
                    format!("Invalid limit {l:?}: use a whole number from 1 to {MAX_DELIVERIES}"),
                )
            })?,
    };
    let record = load(&state, &webhook_id).await?;
    let deliveries = state
        .webhooks
        .store()
        .list_deliveries(&record.id, limit)
        .await?;
    Ok(Json(DeliveryList {
        webhook_id: record.id,
        deliveries: deliveries.into_iter().map(delivery_info).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::limits::ExecuteLimits;

    async fn state() -> AppState {
        crate::tests::state_with(ExecuteLimits::new(1, 1, 1)).await
    }

    async fn call(
        state: &AppState,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let res = crate::app(state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn hook(url: &str) -> Value {
        json!({ "url": url, "events": ["cluster.connected", "command.failed"] })
    }

    #[tokio::test]
    async fn endpoints_are_created_listed_read_and_deleted_by_admins() {
        let state = state().await;
        let (status, body) = call(
            &state,
            "POST",
            "/admin/webhooks",
            "rd",
            Some(hook("https://8.8.8.8/h")),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["details"]["code"], "admin_scope_required");

        let (status, created) = call(
            &state,
            "POST",
            "/admin/webhooks",
            "adm",
            Some(hook("https://8.8.8.8/h")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap();
        assert!(sign::secret_key(secret).is_some(), "{secret}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(
            created["events"],
            json!(["cluster.connected", "command.failed"])
        );
        assert!(
            created["created_by"].as_str().unwrap().starts_with("boot_"),
            "{created}"
        );

        let (status, list) = call(&state, "GET", "/admin/webhooks", "adm", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["webhooks"][0]["id"], id.as_str());
        assert!(
            !list.to_string().contains(secret),
            "the secret is shown once"
        );
        let (status, one) =
            call(&state, "GET", &format!("/admin/webhooks/{id}"), "adm", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["disabled_at"], Value::Null);
        assert!(one.get("secret").is_none());
        let (status, log) = call(
            &state,
            "GET",
            &format!("/admin/webhooks/{id}/deliveries"),
            "adm",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert_eq!(log["deliveries"], json!([]));
        let (status, e) = call(
            &state,
            "GET",
            &format!("/admin/webhooks/{id}/deliveries?limit=0"),
            "adm",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(e["details"]["field"], "limit");

        let (status, _) = call(
            &state,
            "DELETE",
            &format!("/admin/webhooks/{id}"),
            "adm",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        for path in [
            format!("/admin/webhooks/{id}"),
            format!("/admin/webhooks/{id}/deliveries"),
            "/admin/webhooks/nope".into(),
        ] {
            let (status, body) = call(&state, "GET", &path, "adm", None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
        let (status, _) = call(
            &state,
            "DELETE",
            &format!("/admin/webhooks/{id}"),
            "adm",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Both changes are in the audit trail.
        let (_, audit) = call(&state, "GET", "/audit", "adm", None).await;
        let actions: Vec<&str> = audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert!(
            actions.contains(&"webhook.create") && actions.contains(&"webhook.delete"),
            "{actions:?}"
        );
    }

    #[tokio::test]
    async fn bad_input_names_the_field_and_leaves_nothing() {
        let state = state().await;
        let long = format!("https://8.8.8.8/{}", "a".repeat(2100));
        let cases = [
            (
                json!({ "events": ["cluster.connected"] }),
                "url",
                "Missing required field",
            ),
            (
                json!({ "url": "https://8.8.8.8/" }),
                "events",
                "Missing required field",
            ),
            (
                json!({ "url": "https://8.8.8.8/", "events": [] }),
                "events",
                "give 1 to 4",
            ),
            (
                json!({ "url": "https://8.8.8.8/", "events": ["cluster.exploded"] }),
                "events[0]",
                "unknown event type",
            ),
            (
                json!({ "url": "https://8.8.8.8/", "events": ["session.expired", "session.expired"] }),
                "events[1]",
                "twice",
            ),
            (
                json!({ "url": "https://8.8.8.8/", "events": "cluster.connected" }),
                "events",
                "",
            ),
            (
                json!({ "url": "ftp://8.8.8.8/", "events": ["cluster.connected"] }),
                "url",
                "not http or https",
            ),
            (
                json!({ "url": "https://u:p@8.8.8.8/", "events": ["cluster.connected"] }),
                "url",
                "user or password",
            ),
            (
                json!({ "url": long, "events": ["cluster.connected"] }),
                "url",
                "at most 2048",
            ),
            (
                json!({ "url": "http://127.0.0.1:8080/", "events": ["cluster.connected"] }),
                "url",
                "loopback",
            ),
            (
                json!({ "url": "http://localhost/", "events": ["cluster.connected"] }),
                "url",
                "loopback",
            ),
            (
                json!({ "url": "http://10.1.2.3/", "events": ["cluster.connected"] }),
                "url",
                "private",
            ),
            (
                json!({ "url": "http://169.254.169.254/latest/meta-data", "events": ["cluster.connected"] }),
                "url",
                "metadata",
            ),
            (
                json!({ "url": "http://[fe80::1]/", "events": ["cluster.connected"] }),
                "url",
                "link-local",
            ),
            (
                json!({ "url": "https://8.8.8.8/", "events": ["cluster.connected"], "description": "d".repeat(201) }),
                "description",
                "at most 200",
            ),
        ];
        for (body, field, says) in cases {
            let (status, answer) =
                call(&state, "POST", "/admin/webhooks", "adm", Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            assert_eq!(answer["error"], "invalid_request");
            assert_eq!(answer["details"]["field"], field, "{body}: {answer}");
            assert!(
                answer["message"].as_str().unwrap().contains(says),
                "{body}: {answer}"
            );
        }
        let (_, list) = call(&state, "GET", "/admin/webhooks", "adm", None).await;
        assert_eq!(list["webhooks"], json!([]));
    }

    #[tokio::test]
    async fn the_number_of_endpoints_is_bounded() {
        let state = state().await;
        for i in 0..MAX_ENDPOINTS {
            let (status, body) = call(
                &state,
                "POST",
                "/admin/webhooks",
                "adm",
                Some(hook(&format!("https://8.8.8.8/{i}"))),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let (status, body) = call(
            &state,
            "POST",
            "/admin/webhooks",
            "adm",
            Some(hook("https://8.8.8.8/x")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["details"]["code"], "too_many_webhooks");
        let (_, list) = call(&state, "GET", "/admin/webhooks", "adm", None).await;
        assert_eq!(list["webhooks"].as_array().unwrap().len(), MAX_ENDPOINTS);
    }
}
