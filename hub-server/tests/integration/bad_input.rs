//! Every malformed or hostile request gets a 4xx JSON error that says what is wrong, and the
//! repository is unchanged.
#![allow(clippy::unwrap_used)] // test bodies run through backend_tests!, outside #[test] fns

use crate::common::*;
use axum::http::{Method, StatusCode};
use serde_json::json;

async fn malformed_commits_are_refused_and_change_nothing(hub: TestHub) {
    let repo = hub.create_repo("bad", false).await;
    let before = hub.head_sha(&repo).await;
    let commit_url = format!("/api/models/{repo}/commit/main");

    let cases: Vec<(&str, String)> = vec![
        ("not a JSON object", "{broken json\n".to_string()),
        ("header", format!("{}\n", file_line("a.txt", b"a"))),
        ("title", format!("{}\n{}\n", json!({"key": "header", "value": {"summary": "  "}}), file_line("a.txt", b"a"))),
        ("unknown operation key", format!("{}\n{}\n", header_line("x"), json!({"key": "copyFile", "value": {"path": "a"}}))),
        (
            "invalid base64",
            format!(
                "{}\n{}\n",
                header_line("x"),
                json!({"key": "file", "value": {"path": "a.txt", "content": "!!!not base64!!!", "encoding": "base64"}})
            ),
        ),
        (
            "unknown field",
            format!("{}\n{}\n", header_line("x"), json!({"key": "file", "value": {"path": "a.txt", "content": "", "bogus": 1}})),
        ),
        ("header", String::new()),
        ("duplicate header", format!("{}\n{}\n", header_line("x"), header_line("y"))),
        (
            "not stored",
            format!(
                "{}\n{}\n",
                header_line("x"),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "a".repeat(64), "size": 3}})
            ),
        ),
        (
            "not a sha256",
            format!(
                "{}\n{}\n",
                header_line("x"),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "xyz", "size": 3}})
            ),
        ),
        ("doesn't exist", format!("{}\n{}\n", header_line("x"), json!({"key": "deletedFile", "value": {"path": "missing.txt"}}))),
        ("doesn't exist", format!("{}\n{}\n", header_line("x"), json!({"key": "deletedFolder", "value": {"path": "missing"}}))),
        ("parentCommit", format!("{}\n", json!({"key": "header", "value": {"summary": "x", "parentCommit": "not-hex"}}))),
    ];
    for (needle, body) in cases {
        let r = hub.call(Method::POST, &commit_url, Some(&hub.alice), body.clone()).await;
        r.assert_client_error(needle);
        assert_eq!(hub.head_sha(&repo).await, before, "repo changed after {body:?}");
    }
    // A good line after a bad one must not land either: the commit is all or nothing.
    let r = hub
        .commit_lines(&repo, &[header_line("x"), file_line("ok.txt", b"ok"), json!({"key": "deletedFile", "value": {"path": "nope"}})])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-error-code"), Some("EntryNotFound"));
    assert_eq!(hub.files(&repo).await, [".gitattributes"]);
}

async fn hostile_paths_are_refused(hub: TestHub) {
    let repo = hub.create_repo("paths", false).await;
    let before = hub.head_sha(&repo).await;
    for path in ["../escape.txt", "a/../../b", "/abs.txt", ".git/config", "sub/.git/hooks/x", "a\0b", "a//b", "dir/", "./x", ""] {
        let r = hub.commit_lines(&repo, &[header_line("x"), file_line(path, b"data")]).await;
        r.assert_client_error("invalid path");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // Preupload validates paths the same way.
    let r = hub
        .post_json(
            &format!("/api/models/{repo}/preupload/main"),
            Some(&hub.alice),
            json!({"files": [{"path": "../x", "sample": "", "size": 1}]}),
        )
        .await;
    r.assert_client_error("invalid path");
    assert_eq!(hub.head_sha(&repo).await, before);
}

async fn names_outside_the_rules_are_refused(hub: TestHub) {
    for bad in ["-lead", "trail-", "a--b", "a..b", "x.git", "has space", "sl/ash", "", &"a".repeat(97)] {
        let r = hub.post_json("/api/repos/create", Some(&hub.alice), json!({"name": bad, "organization": "alice"})).await;
        r.assert_client_error("invalid");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = hub.post_json("/api/repos/create", Some(&hub.alice), json!({"name": "ok", "organization": "alice", "type": "kernelz"})).await;
    r.assert_client_error("unknown repo type");
    let r = hub.call(Method::POST, "/api/repos/create", Some(&hub.alice), "{not json").await;
    r.assert_client_error("invalid JSON body");
    let r = hub.get("/api/models?author=alice", None).await;
    assert_eq!(r.json(), json!([]));
}

async fn oversized_bodies_are_refused(hub: TestHub) {
    let repo = hub.create_repo("big", false).await;
    let before = hub.head_sha(&repo).await;
    let r = hub.commit_lines(&repo, &[header_line("too big"), file_line("big.txt", &vec![b'x'; 5 * 1024 * 1024])]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    r.assert_client_error("exceeds");
    assert_eq!(hub.head_sha(&repo).await, before);
    let r = hub.call(Method::POST, "/api/repos/create", Some(&hub.alice), vec![b' '; 17 * 1024 * 1024]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

async fn stale_parent_commit_gets_412_and_changes_nothing(hub: TestHub) {
    let repo = hub.create_repo("stale", false).await;
    let stale = hub.head_sha(&repo).await;
    let r = hub.commit_lines(&repo, &[header_line("one"), file_line("one.txt", b"1")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let head = r.json()["commitOid"].as_str().unwrap().to_string();
    let r = hub
        .commit_lines(&repo, &[json!({"key": "header", "value": {"summary": "stale", "parentCommit": stale}}), file_line("two.txt", b"2")])
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(hub.head_sha(&repo).await, head);
    // The current head (even abbreviated) is accepted.
    let r = hub
        .commit_lines(
            &repo,
            &[json!({"key": "header", "value": {"summary": "fresh", "parentCommit": &head[..8]}}), file_line("two.txt", b"2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn concurrent_commits_to_one_branch_lose_nothing(hub: TestHub) {
    let hub = std::sync::Arc::new(hub);
    let repo = hub.create_repo("race", false).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (hub, repo) = (hub.clone(), repo.clone());
        tasks.push(tokio::spawn(async move {
            let r =
                hub.commit_lines(&repo, &[header_line(&format!("c{i}")), file_line(&format!("c/{i}.txt"), i.to_string().as_bytes())]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
            r.json()["commitOid"].as_str().unwrap().to_string()
        }));
    }
    let mut oids = Vec::new();
    for t in tasks {
        oids.push(t.await.unwrap());
    }
    oids.sort();
    oids.dedup();
    assert_eq!(oids.len(), 12);
    assert_eq!(hub.files(&repo).await.len(), 13);
    let commits = hub.get(&format!("/api/models/{repo}/commits/main"), Some(&hub.alice)).await;
    assert_eq!(commits.json().as_array().unwrap().len(), 13);
}

async fn commits_to_tags_and_missing_branches_are_refused(hub: TestHub) {
    let repo = hub.create_repo("targets", false).await;
    let r = hub.post_json(&format!("/api/models/{repo}/tag/main"), Some(&hub.alice), json!({"tag": "v1"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = format!("{}\n{}\n", header_line("x"), file_line("a.txt", b"a"));
    let r = hub.call(Method::POST, &format!("/api/models/{repo}/commit/v1"), Some(&hub.alice), body.clone()).await;
    r.assert_client_error("only branches");
    let r = hub.call(Method::POST, &format!("/api/models/{repo}/commit/nope"), Some(&hub.alice), body).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-error-code"), Some("RevisionNotFound"));
    for bad in ["refs/pr/5", "a..b", "with space"] {
        let r = hub
            .post_json(&format!("/api/models/{repo}/branch/{}", bad.replace('/', "%2F").replace(' ', "%20")), Some(&hub.alice), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// Reads paths that cannot exist in git (NUL, `..`, control characters): a 4xx JSON error with
/// a code, never a 500.
async fn impossible_paths_in_reads_are_4xx(hub: TestHub) {
    let repo = hub.create_repo("reads", false).await;
    for path in ["a%00b", "a%2F..%2F..%2Fb", "..", "x%0D%0ALocation:%20evil"] {
        for uri in [format!("/{repo}/resolve/main/{path}"), format!("/api/models/{repo}/tree/main/{path}")] {
            let r = hub.get(&uri, None).await;
            r.assert_client_error("invalid path");
            assert_eq!(r.header("x-error-code"), Some("BadRequest"), "{uri}");
        }
        let r = hub.get(&format!("/{repo}/blob/main/{path}"), None).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
    }
    // The revision selector turns its form into a Location: never with raw control characters.
    let r = hub.get(&format!("/{repo}/tree-select?rev=main&path=a%0D%0ASet-Cookie:%20x"), None).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let r = hub.get(&format!("/{repo}/tree-select?rev=main&path=sub%20dir/x"), None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some(format!("/{repo}/tree/main/sub%20dir/x").as_str()));
}

/// Refusals that axum makes by itself (a path that does not parse, a method a route does not
/// take) speak the Hub's error protocol too.
async fn every_refusal_is_json_with_a_code(hub: TestHub) {
    let r = hub.call(Method::PUT, "/lfs/upload/x/y/not-a-number", None, "x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.header("x-error-code"), Some("BadRequest"));
    assert!(r.json()["error"].as_str().unwrap().contains("parse"), "{}", r.json());
    let r = hub.get("/api/repos/create", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("x-error-code"), Some("MethodNotAllowed"));
    assert!(r.header("allow").is_some());
    r.json();
    let r = hub.get("/api/models/alice/nope", Some(&hub.alice)).await;
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"), "specific codes stay");
    let r = hub.call(Method::POST, "/api/repos/create", None, "{}").await;
    assert_eq!((r.status, r.header("x-error-code")), (StatusCode::UNAUTHORIZED, Some("Unauthorized")));
    // Found by fuzzing: the card validator's refusals carry the code too, and keep its fields.
    for body in [json!({"content": "---\nlic\n---\n# Card\n", "repoType": "model"}).to_string(), "not json".into()] {
        let r = hub.call(Method::POST, "/api/validate-yaml", None, body).await;
        assert_eq!((r.status, r.header("x-error-code")), (StatusCode::BAD_REQUEST, Some("BadRequest")));
        let answer = r.json();
        assert!(answer["error"].is_string() && answer["errors"][0]["message"] == answer["error"], "{answer}");
    }
}

/// A moved repo's old name answers with a Location on this site, whatever the request path.
async fn moved_repo_redirects_stay_on_this_site(hub: TestHub) {
    hub_server::accounts::create_user(&hub.state, "evil.example", None, None).await.unwrap();
    let token = hub_server::accounts::create_token(&hub.state, "evil.example", "w", hub_server::db::Role::Write).await.unwrap();
    let r = hub.post_json("/api/repos/create", Some(&token), json!({"name": "a", "organization": "evil.example"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = hub.post_json("/api/repos/move", Some(&token), json!({"fromRepo": "evil.example/a", "toRepo": "evil.example/phish"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let base = hub.serve().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let get = |path: &'static str| {
        let base = base.clone();
        async move {
            let mut conn = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
            conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
            let mut answer = String::new();
            conn.read_to_string(&mut answer).await.unwrap();
            answer
        }
    };
    // The doubled slash is no repo path at all: no redirect anywhere.
    let answer = get("//evil.example/a").await;
    let location = answer.lines().find_map(|l| l.strip_prefix("location: "));
    assert!(location.is_none_or(|l| l.starts_with('/') && !l.starts_with("//")), "{answer}");
    // The old name itself redirects, on this site.
    let answer = get("/evil.example/a").await;
    assert_eq!(answer.lines().find_map(|l| l.strip_prefix("location: ")), Some("/evil.example/phish"), "{answer}");
}

/// One NDJSON line arriving in many small pieces is scanned once, not once per piece (which
/// took minutes for a few MiB): the answer comes while a quadratic scan would still be running.
async fn a_long_line_in_small_pieces_does_not_stall(hub: TestHub) {
    let repo = hub.create_repo("long", false).await;
    let line = format!("{}\n{}", header_line("x"), file_line("f.txt", &vec![b'a'; 2 * 1024 * 1024]));
    let pieces: Vec<Result<bytes::Bytes, std::io::Error>> =
        line.into_bytes().chunks(256).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    let started = std::time::Instant::now();
    let r = hub
        .call(
            Method::POST,
            &format!("/api/models/{repo}/commit/main"),
            Some(&hub.alice),
            axum::body::Body::from_stream(futures::stream::iter(pieces)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// An upload batch declaring an absurd size (2^62 bytes) is a per-object 422, not one signed
/// URL per part built in memory until the process dies.
async fn absurd_lfs_sizes_are_refused(hub: TestHub) {
    let repo = hub.create_repo("huge", false).await;
    for size in [1i64 << 62, i64::MAX, 40 * 1024 * 1024 * 1024 + 1] {
        let r = hub
            .post_json(
                &format!("/{repo}.git/info/lfs/objects/batch"),
                Some(&hub.alice),
                json!({"operation": "upload", "transfers": ["basic", "multipart"], "objects": [{"oid": "a".repeat(64), "size": size}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let obj = &r.json()["objects"][0];
        assert_eq!(obj["error"]["code"], 422, "{obj}");
        assert!(obj["error"]["message"].as_str().unwrap().contains("at most"), "{obj}");
    }
    // At the limit: multipart, with a bounded number of parts.
    let r = hub
        .post_json(
            &format!("/{repo}.git/info/lfs/objects/batch"),
            Some(&hub.alice),
            json!({"operation": "upload", "transfers": ["basic", "multipart"], "objects": [{"oid": "a".repeat(64), "size": 40i64 << 30}]}),
        )
        .await;
    let header = r.json()["objects"][0]["actions"]["upload"]["header"].as_object().unwrap().len();
    assert_eq!(header, 8193, "8192 part URLs and chunk_size");

    // Found by fuzzing: many objects at the limit in one batch (8192 parts each) were answered
    // with one signed URL per part of each, 2.4 million URLs for 300 objects. One answer holds at
    // most HUB_LFS_BATCH_MAX_PARTS part URLs; the other objects are offered a single request.
    let objects: Vec<_> = (0..300).map(|i| json!({"oid": format!("{i:064x}"), "size": 40i64 << 30})).collect();
    let started = std::time::Instant::now();
    let r = hub
        .post_json(
            &format!("/{repo}.git/info/lfs/objects/batch"),
            Some(&hub.alice),
            json!({"operation": "upload", "transfers": ["basic", "multipart"], "objects": objects}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let answer = r.json();
    let objects = answer["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 300, "one entry per object asked about");
    let parts: usize = objects.iter().filter_map(|o| o["actions"]["upload"]["header"].as_object()).map(|h| h.len() - 1).sum();
    assert_eq!(parts, 8192, "one object's parts fit the budget of 10000, a second's do not");
    for obj in &objects[1..] {
        let upload = &obj["actions"]["upload"];
        assert!(upload["href"].as_str().unwrap().contains("/lfs/upload/") && upload.get("header").is_none(), "{obj}");
    }
    assert!(r.body.len() < 4 << 20, "answer of {} bytes", r.body.len());
    eprintln!("a batch of 300 objects of 40 GiB answered in {:?}", started.elapsed());
}

/// User files come from the hub's own origin: no answer may be sniffed into HTML or framed, and
/// pages may run only the hub's own script.
async fn answers_carry_security_headers(hub: TestHub) {
    let repo = hub.create_repo("headers", false).await;
    hub.commit_lines(&repo, &[header_line("x"), file_line("page.md", b"<script>alert(1)</script>")]).await;
    let file = hub.get(&format!("/{repo}/resolve/main/page.md"), None).await;
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
    assert!(file.header("content-security-policy").unwrap().contains("sandbox"));
    assert_eq!(file.header("x-frame-options"), Some("DENY"));
    let page = hub.get(&format!("/{repo}"), None).await;
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(hub.get("/api/models", None).await.header("content-security-policy").is_some());
}

/// A write refused before its body is read (no credentials, a bad transfer signature) still
/// leaves the connection usable: pooled clients send their next request on it.
async fn refused_writes_keep_the_connection(hub: TestHub) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let repo = hub.create_repo("keepalive", false).await;
    let base = hub.serve().await;
    let conn = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let mut conn = tokio::io::BufReader::new(conn);
    let body = vec![b'x'; 300_000];
    let requests = [
        format!("POST /api/models/{repo}/commit/main HTTP/1.1\r\nHost: hub\r\nContent-Length: {}\r\n\r\n", body.len()),
        format!(
            "PUT /lfs/upload/nope/{}/{}?exp=1&sig=00 HTTP/1.1\r\nHost: hub\r\nContent-Length: {}\r\n\r\n",
            "a".repeat(64),
            body.len(),
            body.len()
        ),
    ];
    for (i, head) in requests.iter().enumerate() {
        conn.get_mut().write_all(head.as_bytes()).await.unwrap();
        conn.get_mut().write_all(&body).await.unwrap();
        let mut status = String::new();
        conn.read_line(&mut status).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 4"), "request {i}: {status:?}");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).await.unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length: ") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut answer = vec![0u8; length];
        conn.read_exact(&mut answer).await.unwrap();
    }
    // The same connection still answers.
    conn.get_mut().write_all(b"GET /health HTTP/1.1\r\nHost: hub\r\n\r\n").await.unwrap();
    let mut status = String::new();
    conn.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
}

backend_tests!(
    refused_writes_keep_the_connection,
    answers_carry_security_headers,
    absurd_lfs_sizes_are_refused,
    impossible_paths_in_reads_are_4xx,
    every_refusal_is_json_with_a_code,
    moved_repo_redirects_stay_on_this_site,
    a_long_line_in_small_pieces_does_not_stall,
    malformed_commits_are_refused_and_change_nothing,
    hostile_paths_are_refused,
    names_outside_the_rules_are_refused,
    oversized_bodies_are_refused,
    stale_parent_commit_gets_412_and_changes_nothing,
    commits_to_tags_and_missing_branches_are_refused,
    concurrent_commits_to_one_branch_lose_nothing
);

/// `serve` logs one INFO line per request, when the answer is done: method, path, status,
/// bytes, duration and the request id the client got back.
#[test]
fn serve_logs_one_access_line_per_request() {
    use std::io::{BufRead, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut hub = std::process::Command::new(env!("CARGO_BIN_EXE_hub-server"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("HUB_DATA_DIR", dir.path())
        .env("RUST_LOG", "info")
        .env("HUB_LOG_JSON", "true")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut conn = None;
    for _ in 0..200 {
        if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            conn = Some(c);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let mut conn = conn.expect("the hub listens");
    conn.write_all(b"GET /api/models?search=x HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let id = answer.lines().find_map(|l| l.strip_prefix("x-request-id: ")).unwrap().trim().to_string();
    let stderr = std::io::BufReader::new(hub.stderr.take().unwrap());
    let mut found = None;
    for line in stderr.lines().map_while(Result::ok) {
        if line.contains("hub_server::access") {
            found = Some(line);
            break;
        }
    }
    let _ = hub.kill();
    let _ = hub.wait();
    let line: serde_json::Value = serde_json::from_str(&found.expect("an access line")).unwrap();
    assert_eq!(line["level"], "INFO");
    let f = &line["fields"];
    assert_eq!((f["method"].as_str(), f["path"].as_str(), f["status"].as_u64()), (Some("GET"), Some("/api/models"), Some(200)));
    assert_eq!(f["bytes_out"].as_u64(), Some(2), "the body was []");
    assert_eq!(f["request_id"].as_str(), Some(id.as_str()));
    assert!(f["ms"].is_u64());
}

/// A full disk under the log file is not a crash: with stderr on /dev/full (every write ENOSPC),
/// requests that log (the access line, a missing repo) still answer, and the process serves on.
/// tracing-subscriber reports a failed write with `eprintln!`, which panics when stderr itself
/// fails; every request then answered 500.
#[test]
fn a_log_that_cannot_be_written_does_not_fail_requests() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let mut hub = std::process::Command::new(env!("CARGO_BIN_EXE_hub-server"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("HUB_DATA_DIR", dir.path())
        .env("RUST_LOG", "info")
        .stderr(full)
        .spawn()
        .unwrap();
    let ask = |path: &str| -> Option<String> {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).ok()?;
        Some(answer.lines().next().unwrap_or_default().to_string())
    };
    let mut up = false;
    for _ in 0..200 {
        if ask("/health").is_some() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(up, "the hub listens");
    let answers: Vec<_> = ["/api/models", "/api/models/nobody/nothing", "/health"].iter().map(|p| ask(p)).collect();
    let alive = hub.try_wait().unwrap().is_none();
    let _ = hub.kill();
    let _ = hub.wait();
    assert_eq!(
        answers,
        [Some("HTTP/1.1 200 OK".to_string()), Some("HTTP/1.1 401 Unauthorized".to_string()), Some("HTTP/1.1 200 OK".to_string())]
    );
    assert!(alive, "the process kept serving");
}
