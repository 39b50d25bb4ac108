//! whoami, validate-yaml, agent-harnesses.

use crate::app::AppState;
use crate::auth::Caller;
use crate::card::parse_card_data;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_client::types::{AccessTokenInfo, AgentHarnesses, Message, OrgMembership, ValidateYamlRequest, WhoAmI, WhoAmIAuth, YamlValidation};
use serde_json::{json, Value};

pub async fn whoami(caller: Caller) -> ApiResult<Json<WhoAmI>> {
    let Some(user) = caller.user else {
        return Err(ApiError::unauthorized("You must pass an access token (Authorization: Bearer <token>)"));
    };
    let a = &user.account;
    let orgs = user
        .orgs
        .iter()
        .map(|(name, role)| OrgMembership {
            kind: Some("org".into()),
            name: name.clone(),
            fullname: Some(name.clone()),
            role_in_org: Some(role.as_str().into()),
        })
        .collect();
    Ok(Json(WhoAmI {
        kind: Some("user".into()),
        id: Some(a.id.to_string()),
        name: a.name.clone(),
        fullname: Some(a.fullname.clone().unwrap_or_else(|| a.name.clone())),
        email: a.email.clone(),
        email_verified: Some(a.email.is_some()),
        is_pro: Some(false),
        can_pay: Some(false),
        avatar_url: Some(format!("/avatars/{}.svg", a.name)),
        orgs,
        auth: Some(WhoAmIAuth {
            kind: "access_token".into(),
            access_token: Some(AccessTokenInfo { display_name: user.token.name.clone(), role: user.token.role.as_str().into() }),
        }),
    }))
}

/// Checks a README's front matter. Always answers JSON: the client reads the body before the status.
pub async fn validate_yaml(body: Bytes) -> Response {
    // The Hub's error protocol (`X-Error-Code` included), plus the validator's own fields.
    let reject = |msg: String| ApiError::bad_request(msg.clone()).with_yaml_errors(vec![Message { message: msg }]).into_response();
    let req = match serde_json::from_slice::<ValidateYamlRequest>(&body) {
        Ok(req) => req,
        Err(e) if e.is_data() => return reject("missing \"content\" (the README.md text)".into()),
        Err(_) => return reject("invalid JSON body: expected {\"content\": \"...\", \"repoType\": \"model\"}".into()),
    };
    // YAML parsing is CPU work: off the async threads.
    let content = req.content;
    let parsed =
        tokio::task::spawn_blocking(move || parse_card_data(&content).map(|_| ())).await.unwrap_or(Err("could not check the card".into()));
    match parsed {
        Ok(_) => Json(YamlValidation::default()).into_response(),
        Err(msg) => reject(msg),
    }
}

/// `GET /metrics`: Prometheus text format (see `crate::metrics`), behind HUB_METRICS_TOKEN when set.
pub async fn metrics(axum::extract::State(state): axum::extract::State<AppState>, headers: axum::http::HeaderMap) -> ApiResult<Response> {
    if let Some(token) = &state.settings.metrics_token {
        let sent = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // Compared as digests: the time taken says nothing about how much of the token matched.
        use sha2::Digest;
        let ok = sent.is_some_and(|s| sha2::Sha256::digest(s.as_bytes()) == sha2::Sha256::digest(token.expose().as_bytes()));
        if !ok {
            return Err(ApiError::unauthorized("/metrics needs the metrics token (HUB_METRICS_TOKEN) as a Bearer token"));
        }
    }
    let text = state.metrics.render(&state.db).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

pub async fn agent_harnesses(_state: axum::extract::State<AppState>) -> Json<AgentHarnesses> {
    Json(AgentHarnesses::default())
}

/// Liveness for load balancers and container healthchecks, answered from memory: the database
/// answered the monitor's ping within the last few seconds. A probe never queues behind the
/// requests it is meant to judge.
pub async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> ApiResult<Json<Value>> {
    let quiet_ms = state.db.since_last_answer_ms();
    if state.db.is_down() || quiet_ms > 5_000 {
        return Err(crate::error::ApiError::unavailable("the database", format!("no answer for {quiet_ms} ms")));
    }
    Ok(Json(json!({ "status": "ok" })))
}
