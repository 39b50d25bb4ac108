//! The read path's caches against two replicas sharing one data directory and database: what
//! one replica writes, the other answers at once, however warm its caches are.

use crate::common::{file_line, header_line, settings, TestHub};
use axum::http::{Method, StatusCode};
use hub_server::{routes, AppState};
use tower::ServiceExt;

/// A second replica of `hub`: its own process state (caches), the same data and database.
async fn replica(hub: &TestHub) -> axum::Router {
    let mut s = settings(hub.dir.path());
    s.database_url = hub.state.settings.database_url.clone();
    s.storage_url = hub.state.settings.storage_url.clone();
    routes::router(AppState::open(s).await.unwrap())
}

async fn get(router: &axum::Router, uri: &str, token: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut req = axum::http::Request::builder().uri(uri).header("host", "hub.test");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = router.clone().oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    (status, http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes().to_vec())
}

async fn a_replica_sees_another_replicas_writes_at_once(hub: TestHub) {
    let repo = hub.create_repo("cached", false).await;
    assert_eq!(hub.commit_lines(&repo, &[header_line("v1"), file_line("config.json", b"{\"v\": 1}")]).await.status, StatusCode::OK);
    let other = replica(&hub).await;
    let resolve = format!("/{repo}/resolve/main/config.json");
    // Warm every cache on the other replica: the repo row, the token, the ref, the file.
    for _ in 0..2 {
        assert_eq!(get(&other, &resolve, None).await, (StatusCode::OK, b"{\"v\": 1}".to_vec()));
        assert_eq!(get(&other, &resolve, Some(&hub.alice)).await.0, StatusCode::OK);
        assert_eq!(get(&other, &format!("/api/models/{repo}"), None).await.0, StatusCode::OK);
    }

    // A commit through the first replica: the second serves the new content at once.
    assert_eq!(hub.commit_lines(&repo, &[header_line("v2"), file_line("config.json", b"{\"v\": 2}")]).await.status, StatusCode::OK);
    assert_eq!(get(&other, &resolve, None).await, (StatusCode::OK, b"{\"v\": 2}".to_vec()));

    // A ref moved by git itself, not through the hub (an admin's `git update-ref`).
    let name = hub_server::names::RepoName::new(hub_server::names::RepoType::Model, "alice", "cached").unwrap();
    let path = hub.state.git.path(&hub.state.db.find_repo(&name).await.unwrap().unwrap().id);
    let git_repo = git2::Repository::open_bare(&path).unwrap();
    let head = git_repo.find_reference("refs/heads/main").unwrap().peel_to_commit().unwrap();
    let parent = head.parent(0).unwrap().id();
    git_repo.reference("refs/heads/main", parent, true, "test: back to v1").unwrap();
    assert_eq!(get(&other, &resolve, None).await, (StatusCode::OK, b"{\"v\": 1}".to_vec()));

    // Made private through the first replica: the second refuses strangers at once.
    let r = hub
        .call(Method::PUT, &format!("/api/models/{repo}/settings"), Some(&hub.alice), serde_json::json!({"private": true}).to_string())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    // (Anonymous callers get 401 for a repo they cannot see, as from huggingface.co.)
    assert_eq!(get(&other, &resolve, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&other, &format!("/api/models/{repo}"), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&other, &format!("/api/models/{repo}"), Some(&hub.bob)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&other, &resolve, Some(&hub.alice)).await.0, StatusCode::OK);

    // Deleted through the first replica: gone on the second.
    let body = serde_json::json!({"name": "cached", "organization": "alice"}).to_string();
    let r = hub.call(Method::DELETE, "/api/repos/delete", Some(&hub.alice), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(get(&other, &resolve, Some(&hub.alice)).await.0, StatusCode::NOT_FOUND);
}

backend_tests!(a_replica_sees_another_replicas_writes_at_once);
