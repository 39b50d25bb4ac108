//! A real hub for tests: the real router over a fresh SQLite file and a temporary storage root.
#![allow(dead_code, clippy::unwrap_used)]

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hub_server::db::Role;
use hub_server::{accounts, routes, AppState, Settings};
use serde_json::Value;
use tower::ServiceExt;

pub mod xet;

/// Runs each named `async fn(TestHub)` once on SQLite + local disk and once on Postgres (+ S3
/// when `HUB_TEST_S3_BUCKET` and the `AWS_*` variables name a server, as in the test command).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::TestHub::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::TestHub::postgres().await).await
            }
        }
    )*};
}

pub struct TestHub {
    /// The Postgres admin URL and schema of this hub's database, dropped with it.
    pg_schema: Option<(String, String)>,
    pub state: AppState,
    pub router: axum::Router,
    pub dir: tempfile::TempDir,
    pub alice: String,
    pub bob: String,
    pub alice_read: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Asserts a 4xx answer with a JSON `error` message containing `needle`.
    pub fn assert_client_error(&self, needle: &str) {
        assert!(self.status.is_client_error(), "expected a 4xx, got {} {}", self.status, String::from_utf8_lossy(&self.body));
        let err = self.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(err.contains(needle), "error {err:?} does not mention {needle:?}");
    }
}

pub fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        database_url: None,
        storage_url: None,
        // Base URLs come from the Host header: `hub.test` for oneshot calls, the real address when served.
        public_url: None,
        secret: Some("test-secret-test-secret-test-secret".into()),
        lfs_multipart_threshold: 16 * 1024 * 1024,
        lfs_part_size: 5 * 1024 * 1024,
        max_commit_bytes: 4 * 1024 * 1024,
        lfs_max_object_bytes: 40 * 1024 * 1024 * 1024,
        lfs_batch_max_parts: 10_000,
        git_hook_bin: Some(env!("CARGO_BIN_EXE_hub-server").into()),
        allow_signup: true,
        inference_url: None,
        xet_max_shard_bytes: 64 * 1024 * 1024,
        xet_max_shard_chunks: 4_000_000,
        xet_upload_concurrency: 4,
        xet_token_ttl: 3600,
        gc_grace_days: 21,
        gc_interval_hours: 0,
        login_max_failures: 5,
        metrics_token: None,
        s3_max_retries: 5,
        worker_threads: 0,
        blocking_threads: 8,
        blocking_nice: 10,
        read_cache_max_age_ms: 2000,
        request_timeout_secs: 120,
        upload_memory_mib: 64,
        db_acquire_timeout_secs: 30,
        body_idle_timeout_secs: 120,
        login_max_failures_per_ip: 50,
        log_json: false,
    }
}

/// Where Postgres answers for tests; the test command starts one when none does.
pub fn postgres_admin_url() -> String {
    std::env::var("HUB_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some((admin, schema)) = self.pg_schema.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut conn).await;
                    }
                });
            })
            .join();
        }
    }
}

impl TestHub {
    pub async fn sqlite() -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        Self::with_settings(dir, None, None, None).await
    }

    /// A hub on a fresh Postgres schema of the test server.
    pub async fn postgres() -> TestHub {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let schema = format!("hubtest_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("Postgres must answer at {admin} (set HUB_TEST_POSTGRES_URL): {e}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.unwrap();
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
        let dir = tempfile::tempdir().unwrap();
        // With an S3 server at hand (the test command starts Garage), this is the production pair.
        // Under its own prefix: hubs share the bucket, and garbage collection must only see its own.
        let storage = std::env::var("HUB_TEST_S3_BUCKET").ok().map(|b| format!("s3://{b}/{schema}"));
        Self::with_settings(dir, Some(url), storage, Some((admin, schema))).await
    }

    /// A SQLite hub that forwards the Inference API to `urls` (comma-separated).
    pub async fn with_inference(urls: &str) -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.inference_url = Some(urls.to_string());
        Self::from_settings(dir, s, None).await
    }

    /// The default backend (SQLite) for tests that are not about the database.
    pub async fn new() -> TestHub {
        Self::sqlite().await
    }

    async fn with_settings(
        dir: tempfile::TempDir,
        database_url: Option<String>,
        storage_url: Option<String>,
        pg_schema: Option<(String, String)>,
    ) -> TestHub {
        let mut settings = settings(dir.path());
        settings.database_url = database_url.map(Into::into);
        settings.storage_url = storage_url;
        Self::from_settings(dir, settings, pg_schema).await
    }

    pub async fn from_settings(dir: tempfile::TempDir, settings: Settings, pg_schema: Option<(String, String)>) -> TestHub {
        let state = AppState::open(settings).await.unwrap();
        accounts::create_user(&state, "alice", Some("alice@example.org"), None).await.unwrap();
        accounts::create_user(&state, "bob", None, None).await.unwrap();
        let alice = accounts::create_token(&state, "alice", "write", Role::Write).await.unwrap();
        let alice_read = accounts::create_token(&state, "alice", "read", Role::Read).await.unwrap();
        let bob = accounts::create_token(&state, "bob", "write", Role::Write).await.unwrap();
        let router = routes::router(state.clone());
        TestHub { pg_schema, state, router, dir, alice, bob, alice_read }
    }

    pub async fn send(&self, mut req: Request<Body>) -> Reply {
        if !req.headers().contains_key("host") {
            req.headers_mut().insert("host", axum::http::HeaderValue::from_static("hub.test"));
        }
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, body }
    }

    pub async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: impl Into<Body>) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req.body(body.into()).unwrap()).await
    }

    /// Serves this hub on a free loopback port (for real clients such as git); returns its URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = self.router.clone();
        tokio::spawn(
            async move { axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap() },
        );
        url
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, uri, token, Body::empty()).await
    }

    pub async fn post_json(&self, uri: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, uri, token, body.to_string()).await
    }

    /// Creates `alice/{name}` and returns its id.
    pub async fn create_repo(&self, name: &str, private: bool) -> String {
        let r = self
            .post_json(
                "/api/repos/create",
                Some(&self.alice),
                serde_json::json!({"name": name, "organization": "alice", "private": private}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
        format!("alice/{name}")
    }

    pub async fn head_sha(&self, repo: &str) -> String {
        let r = self.get(&format!("/api/models/{repo}"), Some(&self.alice)).await;
        assert_eq!(r.status, StatusCode::OK);
        r.json()["sha"].as_str().unwrap().to_string()
    }

    pub async fn files(&self, repo: &str) -> Vec<String> {
        let r = self.get(&format!("/api/models/{repo}/tree/main?recursive=true"), Some(&self.alice)).await;
        let mut files: Vec<String> =
            r.json().as_array().unwrap().iter().filter(|e| e["type"] == "file").map(|e| e["path"].as_str().unwrap().to_string()).collect();
        files.sort();
        files
    }

    /// Sends an NDJSON commit made of `lines` (each a JSON value) to `main`.
    pub async fn commit_lines(&self, repo: &str, lines: &[Value]) -> Reply {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        self.call(Method::POST, &format!("/api/models/{repo}/commit/main"), Some(&self.alice), body).await
    }
}

pub fn header_line(summary: &str) -> Value {
    serde_json::json!({"key": "header", "value": {"summary": summary, "description": ""}})
}

pub fn file_line(path: &str, content: &[u8]) -> Value {
    use base64::Engine;
    serde_json::json!({"key": "file", "value": {"path": path, "content": base64::engine::general_purpose::STANDARD.encode(content), "encoding": "base64"}})
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Runs git with an isolated HOME; returns (success, stdout + stderr).
pub fn git(home: &std::path::Path, cwd: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Tester")
        .env("GIT_AUTHOR_EMAIL", "tester@example.org")
        .env("GIT_COMMITTER_NAME", "Tester")
        .env("GIT_COMMITTER_EMAIL", "tester@example.org")
        .output()
        .expect("git must be installed");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
