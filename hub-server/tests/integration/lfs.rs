//! LFS objects: visible only after their bytes hash to their oid at the declared size.
#![allow(clippy::unwrap_used)] // test bodies run through backend_tests!, outside #[test] fns

use crate::common::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

fn local_path(url: &str) -> String {
    url.strip_prefix("http://hub.test").expect("absolute URL on the public URL").to_string()
}

async fn batch(hub: &TestHub, repo: &str, op: &str, transfers: &[&str], oid: &str, size: usize) -> Value {
    let r = hub
        .post_json(
            &format!("/{repo}.git/info/lfs/objects/batch"),
            Some(&hub.alice),
            json!({"operation": op, "transfers": transfers, "objects": [{"oid": oid, "size": size}], "hash_algo": "sha256"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/vnd.git-lfs+json"));
    r.json()["objects"][0].clone()
}

/// What the store holds besides published LFS objects (`lfs/aa/bb/<oid>`): staging files of
/// local uploads (next to their target, or under `tmp/`), and on S3 any key but an object's.
async fn staging_leftovers(hub: &TestHub) -> Vec<String> {
    let keys = hub.state.storage.list_keys().await.unwrap();
    keys.into_iter()
        .filter(|k| {
            let parts: Vec<&str> = k.split('/').collect();
            !matches!(parts.as_slice(), ["lfs", a, b, oid] if hub_server::storage::is_sha256(oid) && oid[..2] == **a && oid[2..4] == **b)
        })
        .collect()
}

async fn basic_upload_verify_commit_and_download(hub: TestHub) {
    let repo = hub.create_repo("lfs", false).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let oid = sha256_hex(&data);
    let obj = batch(&hub, &repo, "upload", &["basic", "multipart"], &oid, data.len()).await;
    let href = local_path(obj["actions"]["upload"]["href"].as_str().unwrap());
    assert!(obj["actions"]["upload"].get("header").is_none(), "small objects use the basic transfer");
    // Python's PUT carries no hub headers: the URL authenticates itself.
    let r = hub.call(Method::PUT, &href, None, data.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let verify = local_path(obj["actions"]["verify"]["href"].as_str().unwrap());
    let r = hub.post_json(&verify, Some(&hub.alice), json!({"oid": oid, "size": data.len()})).await;
    assert_eq!(r.status, StatusCode::OK);
    // A second batch sees the object stored and asks for nothing.
    let again = batch(&hub, &repo, "upload", &["basic"], &oid, data.len()).await;
    assert!(again.get("actions").is_none());

    let r = hub
        .commit_lines(
            &repo,
            &[
                header_line("weights"),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": data.len()}}),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let commit = r.json()["commitOid"].as_str().unwrap().to_string();

    let r = hub.call(Method::HEAD, &format!("/{repo}/resolve/main/w.bin"), None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
    assert_eq!(r.header("x-linked-etag"), Some(format!("\"{oid}\"").as_str()));
    assert_eq!(r.header("etag"), Some(format!("\"{oid}\"").as_str()));
    assert_eq!(r.header("x-linked-size"), Some(data.len().to_string().as_str()));
    assert_eq!(r.header("content-length"), Some(data.len().to_string().as_str()));
    let r = hub.get(&format!("/{repo}/resolve/{commit}/w.bin"), None).await;
    assert_eq!(&r.body[..], &data[..]);
    let req = Request::get(format!("/{repo}/resolve/main/w.bin"))
        .header("range", format!("bytes=299990-{}", data.len()))
        .body(Body::empty())
        .unwrap();
    let r = hub.send(req).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), Some(format!("bytes 299990-299999/{}", data.len()).as_str()));
    assert_eq!(&r.body[..], &data[299_990..]);

    // git-lfs style download batch: a signed href that needs no Authorization.
    let obj = batch(&hub, &repo, "download", &["basic"], &oid, data.len()).await;
    let href = local_path(obj["actions"]["download"]["href"].as_str().unwrap());
    let r = hub.get(&href, Some("hf_garbage_token_is_ignored")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], &data[..]);
    let tampered = href.replace("sig=", "sig=00");
    assert_eq!(hub.get(&tampered, None).await.status, StatusCode::FORBIDDEN);
    let missing = batch(&hub, &repo, "download", &["basic"], &"b".repeat(64), 1).await;
    assert_eq!(missing["error"]["code"], 404);
}

async fn mismatching_bytes_are_refused_and_never_visible(hub: TestHub) {
    let repo = hub.create_repo("mismatch", false).await;
    let data = b"the real content".to_vec();
    let oid = sha256_hex(&data);
    let obj = batch(&hub, &repo, "upload", &["basic"], &oid, data.len()).await;
    let href = local_path(obj["actions"]["upload"]["href"].as_str().unwrap());
    for wrong in [b"the fake content".to_vec(), b"short".to_vec(), b"the real content plus more".to_vec()] {
        let r = hub.call(Method::PUT, &href, None, wrong).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&r.body));
        r.assert_client_error("mismatch");
        assert_eq!(hub.state.storage.object_size(&oid).await.unwrap(), None);
    }
    assert_eq!(staging_leftovers(&hub).await, Vec::<String>::new(), "refused uploads leave no garbage");
    let r = hub
        .commit_lines(
            &repo,
            &[header_line("x"), json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": data.len()}})],
        )
        .await;
    r.assert_client_error("not stored");
    // A URL signed for one object cannot store another.
    let other = href.replace(&oid, &sha256_hex(b"other"));
    assert_eq!(hub.call(Method::PUT, &other, None, b"other".to_vec()).await.status, StatusCode::FORBIDDEN);
}

async fn interrupted_upload_leaves_nothing(hub: TestHub) {
    let repo = hub.create_repo("cut", false).await;
    let data = vec![7u8; 3 * 1024 * 1024];
    let oid = sha256_hex(&data);
    let obj = batch(&hub, &repo, "upload", &["basic"], &oid, data.len()).await;
    let href = local_path(obj["actions"]["upload"]["href"].as_str().unwrap());
    // The connection drops after 1 MiB.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from(vec![7u8; 1024 * 1024])),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
    ];
    let req = Request::put(&href).body(Body::from_stream(futures::stream::iter(chunks))).unwrap();
    let r = hub.send(req).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(hub.state.storage.object_size(&oid).await.unwrap(), None);
    assert_eq!(staging_leftovers(&hub).await, Vec::<String>::new());
}

async fn multipart_upload_checks_parts_and_hash(hub: TestHub) {
    let repo = hub.create_repo("multi", false).await;
    let data: Vec<u8> = (0..(17 * 1024 * 1024u32)).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let oid = sha256_hex(&data);
    let basic_only = batch(&hub, &repo, "upload", &["basic"], &oid, data.len()).await;
    assert!(basic_only["actions"]["upload"].get("header").is_none(), "multipart only when the client lists it");
    let obj = batch(&hub, &repo, "upload", &["basic", "multipart"], &oid, data.len()).await;
    let upload = &obj["actions"]["upload"];
    let chunk: usize = upload["header"]["chunk_size"].as_str().unwrap().parse().unwrap();
    let parts = data.len().div_ceil(chunk);
    assert_eq!(parts, 4);
    let complete = local_path(upload["href"].as_str().unwrap());
    // Completing before the parts exist fails and publishes nothing.
    let early = json!({"oid": oid, "parts": (1..=parts).map(|n| json!({"partNumber": n, "etag": "\"x\""})).collect::<Vec<_>>()});
    hub.post_json(&complete, None, early.clone()).await.assert_client_error("not uploaded");
    let mut etags = Vec::new();
    for n in 1..=parts {
        let url = local_path(upload["header"][n.to_string()].as_str().unwrap());
        let slice = data[(n - 1) * chunk..(n * chunk).min(data.len())].to_vec();
        // A part of the wrong size is refused.
        if n == 1 {
            hub.call(Method::PUT, &url, None, slice[..100].to_vec()).await.assert_client_error("size mismatch");
        }
        let r = hub.call(Method::PUT, &url, None, slice).await;
        assert_eq!(r.status, StatusCode::OK);
        etags.push(r.header("etag").unwrap().to_string());
    }
    let body =
        json!({"oid": oid, "parts": etags.iter().enumerate().map(|(i, e)| json!({"partNumber": i + 1, "etag": e})).collect::<Vec<_>>()});
    let r = hub.post_json(&complete, None, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(hub.state.storage.object_size(&oid).await.unwrap(), Some(data.len() as u64));
    assert_eq!(staging_leftovers(&hub).await, Vec::<String>::new(), "parts are removed once joined");
}

async fn inline_files_that_attributes_route_to_lfs_are_stored_as_lfs(hub: TestHub) {
    let repo = hub.create_repo("inline", false).await;
    let weights = b"\x00\x01binary weights".to_vec();
    let r =
        hub.commit_lines(&repo, &[header_line("inline"), file_line("model.safetensors", &weights), file_line("notes.txt", b"hello")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let tree = hub.get(&format!("/api/models/{repo}/tree/main"), None).await.json();
    let entry = tree.as_array().unwrap().iter().find(|e| e["path"] == "model.safetensors").unwrap().clone();
    assert_eq!(entry["lfs"]["oid"], sha256_hex(&weights));
    assert_eq!(entry["size"], weights.len());
    let notes = tree.as_array().unwrap().iter().find(|e| e["path"] == "notes.txt").unwrap().clone();
    assert!(notes.get("lfs").is_none());
    assert_eq!(&hub.get(&format!("/{repo}/resolve/main/model.safetensors"), None).await.body[..], &weights[..]);
}

async fn uploads_need_write_access(hub: TestHub) {
    let repo = hub.create_repo("guarded", false).await;
    let body = json!({"operation": "upload", "objects": [{"oid": "a".repeat(64), "size": 1}]});
    let r = hub.post_json(&format!("/{repo}.git/info/lfs/objects/batch"), None, body.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("lfs-authenticate").is_some(), "git-lfs needs a challenge to send credentials");
    let r = hub.post_json(&format!("/{repo}.git/info/lfs/objects/batch"), Some(&hub.bob), body.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = hub.post_json(&format!("/{repo}.git/info/lfs/objects/batch"), Some(&hub.alice_read), body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    r.assert_client_error("read-only");
}

/// `/metrics` counts requests by route pattern (never by the path asked for), the bytes each
/// way, and what storage holds; with HUB_METRICS_TOKEN set it answers only that token.
async fn metrics_show_requests_bytes_and_storage(hub: TestHub) {
    let repo = hub.create_repo("metered", false).await;
    let data = vec![3u8; 200_000];
    let oid = sha256_hex(&data);
    let obj = batch(&hub, &repo, "upload", &["basic"], &oid, data.len()).await;
    let href = local_path(obj["actions"]["upload"]["href"].as_str().unwrap());
    assert_eq!(hub.call(Method::PUT, &href, None, data.clone()).await.status, StatusCode::OK);
    for i in 0..3 {
        assert_eq!(hub.get(&format!("/api/models/alice/nothing-{i}"), Some(&hub.alice)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(hub.get(&format!("/no/such/{i}/page/at/all"), None).await.status, StatusCode::NOT_FOUND);
    }
    let r = hub.get("/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let value = |series: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value(r#"hub_http_requests_total{method="GET",route="/api/{t}/{ns}/{name}",status="404"}"#), 3.0);
    assert_eq!(value(r#"hub_http_requests_total{method="GET",route="unmatched",status="404"}"#), 3.0);
    assert!(!text.contains("nothing-") && !text.contains("/no/such"), "paths asked for never become labels");
    assert_eq!(value(r#"hub_http_request_bytes_total{route="/lfs/upload/{repo}/{oid}/{size}"}"#), 200_000.0);
    assert!(value(r#"hub_http_response_bytes_total{route="/api/{t}/{ns}/{name}"}"#) > 0.0);
    assert!(value(r#"hub_http_request_duration_seconds_count{method="GET",route="/api/{t}/{ns}/{name}"}"#) >= 3.0);
    assert_eq!(value(r#"hub_storage_objects{kind="lfs"}"#), 1.0);
    assert_eq!(value(r#"hub_storage_bytes{kind="lfs"}"#), 200_000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::common::settings(dir.path());
    settings.metrics_token = Some("scrape-me".into());
    let hub = TestHub::from_settings(dir, settings, None).await;
    for token in [None, Some("wrong"), Some(hub.alice.as_str())] {
        let r = hub.get("/metrics", token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
        r.assert_client_error("metrics token");
    }
    let r = hub.get("/metrics", Some("scrape-me")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&r.body).contains("hub_http_requests_total"));
}

backend_tests!(
    metrics_show_requests_bytes_and_storage,
    basic_upload_verify_commit_and_download,
    mismatching_bytes_are_refused_and_never_visible,
    interrupted_upload_leaves_nothing,
    multipart_upload_checks_parts_and_hash,
    inline_files_that_attributes_route_to_lfs_are_stored_as_lfs,
    uploads_need_write_access
);
