//! The hub's side of the Inference API: access checks before anything is forwarded, what a
//! caller sees when no worker is configured or reachable, and the read-only grants the worker
//! uses for private models. The forwarding itself runs against a real worker in
//! inference-worker/tests/python.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use axum::http::{Method, StatusCode};
use serde_json::json;

async fn with_model(hub: &TestHub, name: &str, private: bool) -> String {
    let repo = hub.create_repo(name, private).await;
    let r = hub.commit_lines(&repo, &[header_line("m"), file_line("config.json", br#"{"model_type":"bert"}"#)]).await;
    assert_eq!(r.status, StatusCode::OK);
    repo
}

#[tokio::test]
async fn without_a_worker_inference_says_how_to_enable_it() {
    let hub = TestHub::new().await;
    let repo = with_model(&hub, "m", false).await;
    let r = hub.post_json(&format!("/models/{repo}"), None, json!({ "inputs": "hi" })).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"].as_str().unwrap().contains("HUB_INFERENCE_URL"), "{:?}", r.json());
}

#[tokio::test]
async fn private_models_are_checked_before_anything_is_forwarded() {
    // Port 9 (discard) on localhost: nothing listens, so a forwarded request fails fast with 502.
    let hub = TestHub::with_inference("http://127.0.0.1:9,http://127.0.0.1:9/").await;
    let repo = with_model(&hub, "secret", true).await;
    let url = format!("/models/{repo}");
    for (token, status) in [(None, StatusCode::UNAUTHORIZED), (Some(hub.bob.as_str()), StatusCode::NOT_FOUND)] {
        let r = hub.post_json(&url, token, json!({ "inputs": "hi" })).await;
        assert_eq!(r.status, status);
        assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
        let r = hub.post_json(&format!("{url}/pipeline/feature-extraction"), token, json!({ "inputs": "hi" })).await;
        assert_eq!(r.status, status);
        assert_eq!(hub.get(&format!("{url}/info"), token).await.status, status);
    }
    // The owner passes the check; every configured worker is tried before giving up.
    let r = hub.post_json(&url, Some(&hub.alice), json!({ "inputs": "hi" })).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.json()["error"].as_str().unwrap().contains("no inference worker could be reached"), "{:?}", r.json());
    // A missing model is told apart from worker trouble.
    let r = hub.post_json("/models/alice/never-existed", Some(&hub.alice), json!({ "inputs": "hi" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
}

#[tokio::test]
async fn a_worker_grant_reads_one_model_at_one_revision_and_nothing_more() {
    let hub = TestHub::new().await;
    let repo = with_model(&hub, "secret", true).await;
    let other = with_model(&hub, "other-secret", true).await;
    let alice = hub.state.db.find_account("alice").await.unwrap().unwrap();
    let name = hub_server::names::RepoName::new(hub_server::names::RepoType::Model, "alice", "secret").unwrap();
    let row = hub.state.db.find_repo(&name).await.unwrap().unwrap();
    let sha = row.sha.clone().unwrap();
    let grant = hub_server::auth::inference_grant(&hub.state.secret, alice.id, &row.id, &sha);
    // What the worker reads: the model at the commit it was told.
    assert_eq!(hub.get(&format!("/api/models/{repo}/revision/{sha}"), Some(&grant)).await.status, StatusCode::OK);
    assert_eq!(hub.get(&format!("/{repo}/resolve/{sha}/config.json"), Some(&grant)).await.status, StatusCode::OK);
    // Not another revision, not another of alice's private repos, not the listing's private repos.
    let r = hub.get(&format!("/api/models/{repo}/revision/main"), Some(&grant)).await;
    assert_eq!(r.header("x-error-code"), Some("RevisionNotFound"));
    assert_eq!(hub.get(&format!("/{repo}/resolve/main/config.json"), Some(&grant)).await.status, StatusCode::NOT_FOUND);
    let r = hub.get(&format!("/api/models/{other}/revision/{sha}"), Some(&grant)).await;
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
    // Read-only: it can't write.
    let r = hub.call(Method::POST, &format!("/api/models/{repo}/commit/main"), Some(&grant), format!("{}\n", header_line("x"))).await;
    assert!(r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND, "{}", r.status);
    // Tampered (last digit changed to another), moved to another repo or user, expired: invalid.
    let last = grant.chars().last().unwrap();
    let tampered = format!("{}{}", &grant[..grant.len() - 1], if last == '0' { '1' } else { '0' });
    let other_user = grant.replacen(&format!("hubgrant_{}_", alice.id), &format!("hubgrant_{}_", alice.id + 1), 1);
    let other_id = hub
        .state
        .db
        .find_repo(&hub_server::names::RepoName::new(hub_server::names::RepoType::Model, "alice", "other-secret").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let other_repo = grant.replacen(&row.id, &other_id, 1);
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 10;
    let claims = format!("inference-grant {} {} {sha}", alice.id, row.id);
    let expired = format!("hubgrant_{}_{}_{sha}_{past}_{}", alice.id, row.id, hub_server::lfs::sign(&hub.state.secret, &claims, past));
    for bad in [tampered, other_user, other_repo, expired, "hubgrant_x".to_string()] {
        assert_eq!(hub.get(&format!("/api/models/{repo}/revision/{sha}"), Some(&bad)).await.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
}
