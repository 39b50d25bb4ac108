//! Large-file content: private per repo whichever way it is named (LFS batch, `lfsFile` lines,
//! pointer text, pushed pointers), Xet's CAS with every rejection of the spec's negative list,
//! and garbage collection. Each refusal is a 4xx JSON answer that changes nothing.
#![allow(clippy::unwrap_used)] // test bodies run through backend_tests!, outside #[test] fns

use crate::common::xet::{data, shard, split, TestFile, TestTerm, TestXorb};
use crate::common::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

fn local(url: &str) -> String {
    url.strip_prefix("http://hub.test").unwrap_or_else(|| panic!("{url} is not on the hub's URL")).to_string()
}

async fn batch(hub: &TestHub, repo: &str, token: Option<&str>, op: &str, oid: &str, size: usize) -> Value {
    let r = hub
        .post_json(
            &format!("/{repo}.git/info/lfs/objects/batch"),
            token,
            json!({"operation": op, "transfers": ["basic"], "objects": [{"oid": oid, "size": size}], "hash_algo": "sha256"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    r.json()["objects"][0].clone()
}

/// Uploads bytes to a repo through the LFS batch API; returns the oid.
async fn lfs_upload(hub: &TestHub, repo: &str, token: &str, bytes: &[u8]) -> String {
    let oid = sha256_hex(bytes);
    let obj = batch(hub, repo, Some(token), "upload", &oid, bytes.len()).await;
    if let Some(href) = obj["actions"]["upload"]["href"].as_str() {
        let r = hub.call(Method::PUT, &local(href), None, bytes.to_vec()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    }
    oid
}

fn lfs_line(path: &str, oid: &str, size: usize) -> Value {
    json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}})
}

fn pointer(oid: &str, size: usize) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n")
}

async fn commit_as(hub: &TestHub, repo: &str, token: &str, lines: &[Value]) -> Reply {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    hub.call(Method::POST, &format!("/api/models/{repo}/commit/main"), Some(token), body).await
}

async fn create_as(hub: &TestHub, token: &str, ns: &str, name: &str, private: bool) -> String {
    let r = hub.post_json("/api/repos/create", Some(token), json!({"name": name, "organization": ns, "private": private})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    format!("{ns}/{name}")
}

/// The message of a refused `lfsFile` line, with the oid blanked so two can be compared.
fn refusal(r: &Reply, oid: &str) -> String {
    r.assert_client_error("is not stored");
    r.json()["error"].as_str().unwrap().replace(oid, "<oid>")
}

async fn lfs_objects_cannot_be_read_by_oid_from_other_repos(hub: TestHub) {
    let secret = hub.create_repo("secret", true).await;
    let bytes = data(1, 200_000);
    let oid = lfs_upload(&hub, &secret, &hub.alice, &bytes).await;
    assert_eq!(
        commit_as(&hub, &secret, &hub.alice, &[header_line("w"), lfs_line("w.bin", &oid, bytes.len())]).await.status,
        StatusCode::OK
    );

    // bob's public repo, anonymously and as bob; even alice's own other repo.
    let bobs = create_as(&hub, &hub.bob, "bob", "mine", false).await;
    let open = hub.create_repo("open", false).await;
    for (repo, token) in [(&bobs, None), (&bobs, Some(hub.bob.as_str())), (&open, Some(hub.alice.as_str()))] {
        let obj = batch(&hub, repo, token, "download", &oid, 7).await;
        assert_eq!(obj["error"]["code"], 404, "{obj}");
        assert_eq!(obj["size"], 7, "the answer echoes the asked size, never the stored one");
        assert!(obj.get("actions").is_none());
    }
    // The way in for a reader of the private repo still works, and its URL is bound to that repo.
    let obj = batch(&hub, &secret, Some(&hub.alice), "download", &oid, bytes.len()).await;
    let href = local(obj["actions"]["download"]["href"].as_str().unwrap());
    assert_eq!(&hub.get(&href, None).await.body[..], &bytes[..]);
    assert!(href.contains(&format!("/{oid}")));

    // An existence or size probe through an upload batch learns nothing: bytes are asked for.
    let probe = batch(&hub, &bobs, Some(&hub.bob), "upload", &oid, 5).await;
    assert!(probe["actions"]["upload"]["href"].is_string(), "{probe}");
    let unknown = "c".repeat(64);
    let probe_unknown = batch(&hub, &bobs, Some(&hub.bob), "upload", &unknown, 5).await;
    assert_eq!(probe.as_object().unwrap().keys().collect::<Vec<_>>(), probe_unknown.as_object().unwrap().keys().collect::<Vec<_>>());
    // Verify answers the same for a stored object the repo does not hold and a missing one.
    let verify = |oid: String| {
        let hub = &hub;
        let bobs = bobs.clone();
        async move { hub.post_json(&format!("/{bobs}.git/info/lfs/objects/verify"), Some(&hub.bob), json!({"oid": oid, "size": 5})).await }
    };
    let (a, b) = (verify(oid.clone()).await, verify(unknown.clone()).await);
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json()["error"].as_str().unwrap().replace(&oid, "X"), b.json()["error"].as_str().unwrap().replace(&unknown, "X"));

    // Possession is proved by uploading: wrong bytes are refused, right bytes are accepted and
    // shared with the stored copy rather than written twice.
    let href = local(batch(&hub, &bobs, Some(&hub.bob), "upload", &oid, bytes.len()).await["actions"]["upload"]["href"].as_str().unwrap());
    let r = hub.call(Method::PUT, &href, None, data(2, bytes.len())).await;
    r.assert_client_error("hash mismatch");
    assert!(batch(&hub, &bobs, Some(&hub.bob), "download", &oid, bytes.len()).await["error"]["code"] == 404);
    let r = hub.call(Method::PUT, &href, None, bytes.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    let obj = batch(&hub, &bobs, Some(&hub.bob), "download", &oid, bytes.len()).await;
    assert!(obj["actions"]["download"]["href"].is_string(), "uploaded: now bob's repo holds it");
}

async fn lfs_file_lines_and_pointer_text_need_a_readable_holder(hub: TestHub) {
    let secret = hub.create_repo("secret", true).await;
    let bytes = data(3, 50_000);
    let oid = lfs_upload(&hub, &secret, &hub.alice, &bytes).await;
    let bobs = create_as(&hub, &hub.bob, "bob", "mine", false).await;
    let before = hub.get(&format!("/api/models/{bobs}"), None).await.json()["sha"].clone();

    // bob names alice's private object: refused exactly as an object the hub never had.
    let r = commit_as(&hub, &bobs, &hub.bob, &[header_line("steal"), lfs_line("x.bin", &oid, bytes.len())]).await;
    let unknown = "d".repeat(64);
    let r2 = commit_as(&hub, &bobs, &hub.bob, &[header_line("steal"), lfs_line("x.bin", &unknown, bytes.len())]).await;
    assert_eq!(refusal(&r, &oid), refusal(&r2, &unknown));
    // The same through a pointer written as an ordinary file.
    let r = commit_as(&hub, &bobs, &hub.bob, &[header_line("steal"), file_line("x.bin", pointer(&oid, bytes.len()).as_bytes())]).await;
    r.assert_client_error("is not stored");
    assert_eq!(hub.get(&format!("/api/models/{bobs}"), None).await.json()["sha"], before, "nothing committed");

    // alice can read the private repo, so she may copy its content into her public one, either way.
    let open = hub.create_repo("open", false).await;
    let r = commit_as(&hub, &open, &hub.alice, &[header_line("copy"), lfs_line("a.bin", &oid, bytes.len())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let r = commit_as(&hub, &open, &hub.alice, &[header_line("copy"), file_line("b.bin", pointer(&oid, bytes.len()).as_bytes())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    for f in ["a.bin", "b.bin"] {
        assert_eq!(&hub.get(&format!("/{open}/resolve/main/{f}"), None).await.body[..], &bytes[..]);
    }
    // Now public through alice's choice: bob may copy it from there.
    let r = commit_as(&hub, &bobs, &hub.bob, &[header_line("copy"), lfs_line("x.bin", &oid, bytes.len())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
}

async fn deleted_and_reprivatised_repos_stop_sharing(hub: TestHub) {
    let public = hub.create_repo("public", false).await;
    let bytes = data(4, 40_000);
    let oid = lfs_upload(&hub, &public, &hub.alice, &bytes).await;
    assert_eq!(
        commit_as(&hub, &public, &hub.alice, &[header_line("w"), lfs_line("w.bin", &oid, bytes.len())]).await.status,
        StatusCode::OK
    );
    let obj = batch(&hub, &public, None, "download", &oid, bytes.len()).await;
    let href = local(obj["actions"]["download"]["href"].as_str().unwrap());

    // Private again: bob (who never copied it) can no longer name it into a repo of his, and
    // the repo's own batch wants credentials.
    let r = hub.call(Method::PUT, &format!("/api/models/{public}/settings"), Some(&hub.alice), json!({"private": true}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);
    let b2 = create_as(&hub, &hub.bob, "bob", "two", false).await;
    commit_as(&hub, &b2, &hub.bob, &[header_line("c"), lfs_line("w.bin", &oid, bytes.len())]).await.assert_client_error("is not stored");
    assert_eq!(batch(&hub, &b2, Some(&hub.bob), "download", &oid, bytes.len()).await["error"]["code"], 404);
    let r = hub
        .post_json(
            &format!("/{public}.git/info/lfs/objects/batch"),
            None,
            json!({"operation": "download", "objects": [{"oid": oid, "size": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // alice, a member, still reads it there.
    assert!(batch(&hub, &public, Some(&hub.alice), "download", &oid, bytes.len()).await["actions"]["download"]["href"].is_string());

    // Deleted: its URLs stop working, and a new repo of the same name holds nothing.
    let r = hub
        .call(Method::DELETE, "/api/repos/delete", Some(&hub.alice), json!({"name": "public", "organization": "alice"}).to_string())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(hub.get(&href, None).await.status, StatusCode::NOT_FOUND);
    let again = hub.create_repo("public", false).await;
    assert_eq!(batch(&hub, &again, None, "download", &oid, bytes.len()).await["error"]["code"], 404);
    commit_as(&hub, &again, &hub.alice, &[header_line("c"), lfs_line("w.bin", &oid, bytes.len())])
        .await
        .assert_client_error("is not stored");
}

/// Pushes a commit holding a pointer file to `repo` as `user`; returns (accepted, output).
fn push_pointer(base: &str, repo: &str, user: &str, token: &str, text: &str) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (home, clone) = (tmp.path().join("home"), tmp.path().join("clone"));
    std::fs::create_dir_all(&home).unwrap();
    let url = format!("{base}/{repo}").replacen("http://", &format!("http://{user}:{token}@"), 1);
    let (ok, out) = git(&home, tmp.path(), &["clone", "-q", &url, clone.to_str().unwrap()]);
    assert!(ok, "{out}");
    std::fs::write(clone.join("w.safetensors"), text).unwrap();
    assert!(git(&home, &clone, &["add", "-A"]).0);
    assert!(git(&home, &clone, &["commit", "-q", "-m", "pointer"]).0);
    git(&home, &clone, &["push", "-q", &url, "HEAD:main"])
}

async fn pushed_pointers_need_a_readable_holder(hub: TestHub) {
    let base = hub.serve().await;
    let secret = hub.create_repo("secret", true).await;
    let bytes = data(5, 30_000);
    let oid = lfs_upload(&hub, &secret, &hub.alice, &bytes).await;
    let bobs = create_as(&hub, &hub.bob, "bob", "mine", false).await;
    let before = hub.get(&format!("/api/models/{bobs}"), None).await.json()["sha"].clone();
    let (ok, out) = push_pointer(&base, &bobs, "bob", &hub.bob, &pointer(&oid, bytes.len()));
    assert!(!ok, "{out}");
    assert!(out.contains("does not have the LFS content"), "{out}");
    assert_eq!(hub.get(&format!("/api/models/{bobs}"), None).await.json()["sha"], before);
    // alice can read the private repo: her push of the same pointer into her public repo lands.
    let open = hub.create_repo("open", false).await;
    let (ok, out) = push_pointer(&base, &open, "alice", &hub.alice, &pointer(&oid, bytes.len()));
    assert!(ok, "{out}");
    assert_eq!(&hub.get(&format!("/{open}/resolve/main/w.safetensors"), None).await.body[..], &bytes[..]);
}

// ---- Xet ----

async fn xet_token(hub: &TestHub, repo: &str, token: Option<&str>, write: bool) -> String {
    let kind = if write { "write" } else { "read" };
    let r = hub.get(&format!("/api/models/{repo}/xet-{kind}-token/main"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["casUrl"], "http://hub.test/xet");
    assert_eq!(r.header("x-xet-access-token"), v["accessToken"].as_str());
    assert_eq!(r.header("x-xet-cas-url"), Some("http://hub.test/xet"));
    assert_eq!(r.header("x-xet-token-expiration").map(str::to_string), Some(v["exp"].to_string()));
    v["accessToken"].as_str().unwrap().to_string()
}

async fn post_xorb(hub: &TestHub, token: &str, x: &TestXorb) -> Reply {
    hub.call(Method::POST, &format!("/xet/v1/xorbs/default/{}", x.hex()), Some(token), x.body.clone()).await
}

async fn post_shard(hub: &TestHub, token: &str, body: Vec<u8>) -> Reply {
    hub.call(Method::POST, "/xet/v1/shards", Some(token), body).await
}

async fn xorb_count(hub: &TestHub) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM xet_xorbs").fetch_one(hub.state.db.pool()).await.unwrap().try_get::<i64, _>("n").unwrap()
}

async fn file_count(hub: &TestHub) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM xet_files").fetch_one(hub.state.db.pool()).await.unwrap().try_get::<i64, _>("n").unwrap()
}

/// Decodes stored xorb bytes (chunks with headers) back into data.
fn unpack(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = std::io::Cursor::new(stored);
    while (r.position() as usize) < stored.len() {
        xet_core_structures::xorb_object::deserialize_chunk_to_writer(&mut r, &mut out).unwrap();
    }
    out
}

async fn xet_upload_download_and_every_non_xet_path(hub: TestHub) {
    let repo = hub.create_repo("xet", false).await;
    let content = data(6, 300_000);
    let a = TestXorb::new(split(&content[..200_000], &[70_000, 60_000]));
    let b = TestXorb::new(split(&content[200_000..], &[40_000]));
    let file = TestFile::new(vec![TestTerm { xorb: &a, start: 0, end: 3 }, TestTerm { xorb: &b, start: 0, end: 2 }]);
    assert_eq!(file.bytes(), content);
    let w = xet_token(&hub, &repo, Some(&hub.alice), true).await;

    for x in [&a, &b] {
        let r = post_xorb(&hub, &w, x).await;
        assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"was_inserted": true})));
    }
    // Idempotent.
    assert_eq!(post_xorb(&hub, &w, &a).await.json(), json!({"was_inserted": false}));
    // hf_xet's probes fall back on a 404, never another status.
    assert_eq!(
        hub.call(Method::POST, &format!("/xet/v1/xorb-grants/default/{}", a.hex()), Some(&w), Body::empty()).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(hub.call(Method::POST, "/xet/v2/shards", Some(&w), Body::empty()).await.status, StatusCode::NOT_FOUND);
    assert_eq!(hub.call(Method::POST, "/v1/telemetry", Some(&w), "{}").await.status, StatusCode::NO_CONTENT);

    let r = post_shard(&hub, &w, shard(&[file], &[&a, &b])).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"result": 1})));
    let file = TestFile::new(vec![TestTerm { xorb: &a, start: 0, end: 3 }, TestTerm { xorb: &b, start: 0, end: 2 }]);
    let (sha, fh) = (file.sha256(), file.hash().hex());
    let r = commit_as(&hub, &repo, &hub.alice, &[header_line("xet"), lfs_line("model.bin", &sha, content.len())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let commit = r.json()["commitOid"].as_str().unwrap().to_string();

    // Resolve: the headers huggingface_hub needs to go through Xet.
    let r = hub.call(Method::HEAD, &format!("/{repo}/resolve/main/model.bin"), None, Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-xet-hash"), Some(fh.as_str()));
    assert_eq!(r.header("x-linked-size"), Some(content.len().to_string().as_str()));
    assert_eq!(r.header("x-linked-etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(r.header("link"), Some(format!("<http://hub.test/api/models/{repo}/xet-read-token/{commit}>; rel=\"xet-auth\"").as_str()));
    // tree and paths-info carry xetHash, next to lfs.
    let tree = hub.get(&format!("/api/models/{repo}/tree/main"), None).await.json();
    let entry = tree.as_array().unwrap().iter().find(|e| e["path"] == "model.bin").unwrap().clone();
    assert_eq!(entry["xetHash"], fh.as_str());
    assert_eq!(entry["lfs"]["oid"], sha.as_str());
    let pi =
        hub.call(Method::POST, &format!("/api/models/{repo}/paths-info/main"), None, "paths=model.bin&paths=.gitattributes").await.json();
    let by_path = |p: &str| pi.as_array().unwrap().iter().find(|e| e["path"] == p).unwrap().clone();
    assert_eq!(by_path("model.bin")["xetHash"], fh.as_str(), "{pi}");
    assert!(by_path(".gitattributes").get("xetHash").is_none());

    // Clients without Xet get the bytes reassembled, whole and by range (hf-hub 0.4's probe too).
    assert_eq!(&hub.get(&format!("/{repo}/resolve/main/model.bin"), None).await.body[..], &content[..]);
    for (range, want, status) in [
        ("bytes=0-0", &content[..1], StatusCode::PARTIAL_CONTENT),
        ("bytes=69990-200010", &content[69_990..=200_010], StatusCode::PARTIAL_CONTENT),
        ("bytes=-1000", &content[content.len() - 1000..], StatusCode::PARTIAL_CONTENT),
        ("bytes=299999-400000", &content[299_999..], StatusCode::PARTIAL_CONTENT),
    ] {
        let req = Request::get(format!("/{repo}/resolve/main/model.bin")).header("range", range).body(Body::empty()).unwrap();
        let r = hub.send(req).await;
        assert_eq!(r.status, status, "{range}");
        assert_eq!(&r.body[..], want, "{range}");
    }
    let req = Request::get(format!("/{repo}/resolve/main/model.bin")).header("range", "bytes=300000-").body(Body::empty()).unwrap();
    assert_eq!(hub.send(req).await.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // git-lfs: the download batch of a Xet-backed object streams the same bytes.
    let obj = batch(&hub, &repo, None, "download", &sha, content.len()).await;
    assert_eq!(&hub.get(&local(obj["actions"]["download"]["href"].as_str().unwrap()), None).await.body[..], &content[..]);

    // Over Xet: the read token (anonymous: the repo is public), a reconstruction, signed ranges.
    let read = xet_token(&hub, &repo, None, false).await;
    for version in ["v1", "v2"] {
        let req = Request::get(format!("/xet/{version}/reconstructions/{fh}"))
            .header("authorization", format!("Bearer {read}"))
            .header("range", "bytes=100000-250000")
            .body(Body::empty())
            .unwrap();
        let r = hub.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        let mut out = Vec::new();
        for t in v["terms"].as_array().unwrap() {
            let xorb = t["hash"].as_str().unwrap();
            let (cs, ce) = (t["range"]["start"].as_u64().unwrap(), t["range"]["end"].as_u64().unwrap());
            let (url, bytes_start, bytes_end, fs, fe) = if version == "v2" {
                let f = &v["xorbs"][xorb][0];
                let d = &f["ranges"][0];
                (
                    f["url"].as_str().unwrap(),
                    d["bytes"]["start"].as_u64().unwrap(),
                    d["bytes"]["end"].as_u64().unwrap(),
                    d["chunks"]["start"].as_u64().unwrap(),
                    d["chunks"]["end"].as_u64().unwrap(),
                )
            } else {
                let f = &v["fetch_info"][xorb][0];
                (
                    f["url"].as_str().unwrap(),
                    f["url_range"]["start"].as_u64().unwrap(),
                    f["url_range"]["end"].as_u64().unwrap(),
                    f["range"]["start"].as_u64().unwrap(),
                    f["range"]["end"].as_u64().unwrap(),
                )
            };
            assert!(fs <= cs && ce <= fe, "every term lies inside its fetch");
            // No Authorization: the URL is its own credential.
            let req = Request::get(local(url)).header("range", format!("bytes={bytes_start}-{bytes_end}")).body(Body::empty()).unwrap();
            let r = hub.send(req).await;
            assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
            let x = if xorb == a.hex() { &a } else { &b };
            let unpacked = unpack(&r.body);
            let skip: usize = x.chunks[fs as usize..cs as usize].iter().map(Vec::len).sum();
            let len: usize = x.chunks[cs as usize..ce as usize].iter().map(Vec::len).sum();
            assert_eq!(t["unpacked_length"].as_u64().unwrap() as usize, len);
            out.extend_from_slice(&unpacked[skip..skip + len]);
        }
        let off = v["offset_into_first_range"].as_u64().unwrap() as usize;
        assert_eq!(&out[off..off + 150_001], &content[100_000..=250_000], "{version}");
    }

    // Global dedup: the first chunk of the file is in the index; the answer is a keyed shard in
    // which no raw chunk hash appears.
    let r = hub.get(&format!("/xet/v1/chunks/default/{}", a.hashes[0].hex()), Some(&read)).await;
    assert_eq!(r.status, StatusCode::OK);
    for h in a.hashes.iter().chain(&b.hashes) {
        assert!(!r.body.windows(32).any(|w| w == h.as_bytes()), "raw chunk hash {} leaked", h.hex());
    }
    let parsed = xet_core_structures::metadata_shard::streaming_shard::MDBMinimalShard::from_reader(&mut &r.body[..], true, true).unwrap();
    assert_eq!(parsed.num_files(), 0);
    assert_eq!(parsed.num_xorb(), 2);
    assert_eq!(hub.get(&format!("/xet/v1/chunks/default/{}", "0".repeat(64)), Some(&read)).await.status, StatusCode::NOT_FOUND);

    // Copying Xet content into another user's repo: the hub hashes the bytes itself before a
    // declared SHA-256 crosses repos. An honest declaration copies; a lie does not.
    let bobs = create_as(&hub, &hub.bob, "bob", "copies", false).await;
    let r = commit_as(&hub, &bobs, &hub.bob, &[header_line("copy"), lfs_line("model.bin", &sha, content.len())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&hub.get(&format!("/{bobs}/resolve/main/model.bin"), None).await.body[..], &content[..]);
    let liar = TestXorb::new(split(&data(12, 20_000), &[]));
    assert_eq!(post_xorb(&hub, &w, &liar).await.status, StatusCode::OK);
    let mut lie = TestFile::new(vec![TestTerm { xorb: &liar, start: 0, end: 1 }]);
    let claimed = sha256_hex(b"some popular file");
    lie.sha256 = Some(claimed.clone());
    assert_eq!(post_shard(&hub, &w, shard(&[lie], &[&liar])).await.status, StatusCode::OK);
    // Its own repo's writer may commit it (their repo, their claim) ...
    let r = commit_as(&hub, &repo, &hub.alice, &[header_line("lie"), lfs_line("lie.bin", &claimed, 20_000)]).await;
    assert_eq!(r.status, StatusCode::OK);
    // ... but nobody can pull it into another repo under that name.
    let r = commit_as(&hub, &bobs, &hub.bob, &[header_line("copy"), lfs_line("lie.bin", &claimed, 20_000)]).await;
    r.assert_client_error("is not stored");

    // usedStorage counts each xorb once, however many files use it.
    let copy = TestFile::new(vec![TestTerm { xorb: &a, start: 0, end: 3 }, TestTerm { xorb: &b, start: 0, end: 2 }]);
    let r = post_shard(&hub, &w, shard(&[copy], &[])).await;
    assert_eq!(r.status, StatusCode::OK, "a shard that only references stored xorbs is fine");
    let r = commit_as(&hub, &repo, &hub.alice, &[header_line("again"), lfs_line("copy.bin", &sha, content.len())]).await;
    assert_eq!(r.status, StatusCode::OK);
    let info = hub.get(&format!("/api/models/{repo}?expand=usedStorage"), None).await.json();
    let stored = (a.body.len() + b.body.len() + liar.body.len()) as u64;
    let attributes = hub.get(&format!("/{repo}/resolve/main/.gitattributes"), None).await.body.len() as u64;
    assert_eq!(info["usedStorage"].as_u64().unwrap(), stored + attributes, "{info}");
}

async fn xet_refusals_are_4xx_and_change_nothing(hub: TestHub) {
    let repo = hub.create_repo("neg", false).await;
    let other = create_as(&hub, &hub.bob, "bob", "other", true).await;
    let w = xet_token(&hub, &repo, Some(&hub.alice), true).await;
    let r_tok = xet_token(&hub, &repo, Some(&hub.alice), false).await;
    let content = data(7, 120_000);
    let x = TestXorb::new(split(&content, &[50_000, 50_000]));
    let (xorbs, files) = (xorb_count(&hub).await, file_count(&hub).await);

    // Xorbs: wrong hash in the path, a corrupted chunk, a read token, no or an expired token.
    let wrong = hub.call(Method::POST, &format!("/xet/v1/xorbs/default/{}", "ab".repeat(32)), Some(&w), x.body.clone()).await;
    wrong.assert_client_error("hash mismatch");
    let mut corrupt = x.body.clone();
    let n = corrupt.len();
    corrupt[n / 2] ^= 0xff;
    hub.call(Method::POST, &format!("/xet/v1/xorbs/default/{}", x.hex()), Some(&w), corrupt).await.assert_client_error("xorb");
    let truncated = x.body[..x.body.len() - 10].to_vec();
    hub.call(Method::POST, &format!("/xet/v1/xorbs/default/{}", x.hex()), Some(&w), truncated).await.assert_client_error("xorb");
    let r = post_xorb(&hub, &r_tok, &x).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    r.assert_client_error("read-only");
    assert_eq!(
        hub.call(Method::POST, &format!("/xet/v1/xorbs/default/{}", x.hex()), None, x.body.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let row = hub
        .state
        .db
        .find_repo(&hub_server::names::RepoName::new(hub_server::names::RepoType::Model, "alice", "neg").unwrap())
        .await
        .unwrap()
        .unwrap();
    let expired = hub_server::xet::token::mint(
        &hub.state.secret,
        &hub_server::xet::token::CasToken { repo_id: row.id.clone(), write: true, user_id: None, exp: 1 },
    );
    assert_eq!(post_xorb(&hub, &expired, &x).await.status, StatusCode::UNAUTHORIZED);
    hub.call(Method::POST, "/xet/v1/xorbs/default/not-a-hash", Some(&w), x.body.clone()).await.assert_client_error("64 lowercase hex");
    assert_eq!(xorb_count(&hub).await, xorbs, "no refused xorb is recorded");
    let stored = hub.state.storage.list_xorbs().await.unwrap();
    assert!(stored.iter().all(|o| o.name != x.hex() && o.name != "ab".repeat(32)), "no refused xorb is stored");

    // Shards: a missing xorb, a bad verification hash, a wrong file hash, no verification, no
    // SHA-256, a read token, garbage.
    let term = |x| TestTerm { xorb: x, start: 0, end: 3 };
    let missing = shard(&[TestFile::new(vec![term(&x)])], &[]);
    post_shard(&hub, &w, missing).await.assert_client_error("is not stored");
    assert_eq!(post_xorb(&hub, &w, &x).await.status, StatusCode::OK);
    let xorbs = xorb_count(&hub).await;
    let mut f = TestFile::new(vec![term(&x)]);
    f.bad_verification = Some(0);
    post_shard(&hub, &w, shard(&[f], &[])).await.assert_client_error("verification hash");
    let mut f = TestFile::new(vec![term(&x)]);
    f.file_hash = Some(xet_core_structures::merklehash::MerkleHash::random_from_seed(5));
    post_shard(&hub, &w, shard(&[f], &[])).await.assert_client_error("the terms hash to");
    let mut f = TestFile::new(vec![term(&x)]);
    f.verification = false;
    post_shard(&hub, &w, shard(&[f], &[])).await.assert_client_error("verification");
    let mut f = TestFile::new(vec![term(&x)]);
    f.metadata_ext = false;
    post_shard(&hub, &w, shard(&[f], &[])).await.assert_client_error("SHA-256");
    let f = TestFile::new(vec![TestTerm { xorb: &x, start: 1, end: 9 }]);
    post_shard(&hub, &w, shard(&[f], &[])).await.assert_client_error("outside");
    assert_eq!(post_shard(&hub, &r_tok, shard(&[TestFile::new(vec![term(&x)])], &[])).await.status, StatusCode::FORBIDDEN);
    post_shard(&hub, &w, b"not a shard at all, not even close to one".to_vec()).await.assert_client_error("invalid shard");
    assert_eq!(file_count(&hub).await, files, "no refused shard registers a file");
    assert_eq!(xorb_count(&hub).await, xorbs);

    // A commit naming a file registered only in another repo, or nowhere.
    let w_other = xet_token(&hub, &other, Some(&hub.bob), true).await;
    let f = TestFile::new(vec![term(&x)]);
    let (sha, fh) = (f.sha256(), f.hash().hex());
    assert_eq!(post_shard(&hub, &w_other, shard(&[f], &[])).await.status, StatusCode::OK);
    commit_as(&hub, &repo, &hub.alice, &[header_line("x"), lfs_line("m.bin", &sha, content.len())])
        .await
        .assert_client_error("is not stored");
    commit_as(&hub, &repo, &hub.alice, &[header_line("x"), lfs_line("m.bin", &"e".repeat(64), 1)])
        .await
        .assert_client_error("is not stored");
    // A reconstruction of another repo's file: 404, as if unknown.
    let r = hub.get(&format!("/xet/v2/reconstructions/{fh}"), Some(&r_tok)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    r.assert_client_error("no file");
    // Its own repo's reader sees it; a range past the end is a 416.
    let r_other = xet_token(&hub, &other, Some(&hub.bob), false).await;
    // Bytes 60000..=70000 lie in the second chunk: the URL opens that chunk only.
    let req = Request::get(format!("/xet/v2/reconstructions/{fh}"))
        .header("authorization", format!("Bearer {r_other}"))
        .header("range", "bytes=60000-70000")
        .body(Body::empty())
        .unwrap();
    let r = hub.send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["terms"][0]["range"], json!({"start": 1, "end": 2}), "{v}");
    let fetch = &v["xorbs"][x.hex()][0];
    let (start, end) = (fetch["ranges"][0]["bytes"]["start"].as_u64().unwrap(), fetch["ranges"][0]["bytes"]["end"].as_u64().unwrap());
    assert!(start > 0);
    let url = local(fetch["url"].as_str().unwrap());
    let req = Request::get(format!("/xet/v2/reconstructions/{fh}"))
        .header("authorization", format!("Bearer {r_other}"))
        .header("range", format!("bytes={}-", content.len()))
        .body(Body::empty())
        .unwrap();
    assert_eq!(hub.send(req).await.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // Signed range URLs: as given they work; a tampered signature, a widened range, or a Range
    // outside the signed one do not.
    let req = Request::get(url.as_str()).header("range", format!("bytes={start}-{end}")).body(Body::empty()).unwrap();
    assert_eq!(hub.send(req).await.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(hub.get(&url.replace("sig=", "sig=0"), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(hub.get(&url.replace(&format!("r={start}-"), "r=0-"), None).await.status, StatusCode::FORBIDDEN);
    let req = Request::get(url.as_str()).header("range", "bytes=0-10").body(Body::empty()).unwrap();
    assert_eq!(hub.send(req).await.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // Token routes: bob's private repo is not alice's to read; writing needs a write token.
    assert_eq!(hub.get(&format!("/api/models/{other}/xet-read-token/main"), Some(&hub.alice)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(hub.get(&format!("/api/models/{repo}/xet-write-token/main"), Some(&hub.alice_read)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(hub.get(&format!("/api/models/{repo}/xet-write-token/main"), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hub.get(&format!("/api/models/{repo}/xet-write-token/nope"), Some(&hub.alice)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(hub.get(&format!("/api/models/{repo}/xet-write-token/None?create_pr=1"), Some(&hub.alice)).await.status, StatusCode::OK);
}

async fn garbage_collection_keeps_what_is_reachable(hub: TestHub) {
    let repo = hub.create_repo("kept", false).await;
    let kept = data(8, 30_000);
    let oid = lfs_upload(&hub, &repo, &hub.alice, &kept).await;
    assert_eq!(commit_as(&hub, &repo, &hub.alice, &[header_line("k"), lfs_line("k.bin", &oid, kept.len())]).await.status, StatusCode::OK);
    let orphan = data(9, 20_000);
    let orphan_oid = lfs_upload(&hub, &repo, &hub.alice, &orphan).await; // never committed
                                                                         // A Xet file in a repo that is then deleted, and one that stays.
    let gone_repo = hub.create_repo("gone", false).await;
    let w = xet_token(&hub, &gone_repo, Some(&hub.alice), true).await;
    let gx = TestXorb::new(split(&data(10, 90_000), &[45_000]));
    assert_eq!(post_xorb(&hub, &w, &gx).await.status, StatusCode::OK);
    let gf = TestFile::new(vec![TestTerm { xorb: &gx, start: 0, end: 2 }]);
    let gsha = gf.sha256();
    assert_eq!(post_shard(&hub, &w, shard(&[gf], &[&gx])).await.status, StatusCode::OK);
    assert_eq!(commit_as(&hub, &gone_repo, &hub.alice, &[header_line("g"), lfs_line("g.bin", &gsha, 90_000)]).await.status, StatusCode::OK);
    let w2 = xet_token(&hub, &repo, Some(&hub.alice), true).await;
    let kx = TestXorb::new(split(&data(11, 70_000), &[35_000]));
    assert_eq!(post_xorb(&hub, &w2, &kx).await.status, StatusCode::OK);
    let kf = TestFile::new(vec![TestTerm { xorb: &kx, start: 0, end: 2 }]);
    let ksha = kf.sha256();
    assert_eq!(post_shard(&hub, &w2, shard(&[kf], &[&kx])).await.status, StatusCode::OK);
    assert_eq!(commit_as(&hub, &repo, &hub.alice, &[header_line("x"), lfs_line("x.bin", &ksha, 70_000)]).await.status, StatusCode::OK);
    let r =
        hub.call(Method::DELETE, "/api/repos/delete", Some(&hub.alice), json!({"name": "gone", "organization": "alice"}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK);

    // Within the grace period nothing goes, dry run or not.
    let report = hub_server::gc::collect(&hub.state, false).await.unwrap();
    assert!(report.lfs_objects.is_empty() && report.xorbs.is_empty() && report.shards.is_empty(), "{report:?}");

    // Three weeks later (every timestamp moved back).
    let old = hub_server::db::now_ms() - 22 * 24 * 3600 * 1000;
    for sql in [
        "UPDATE repo_objects SET touched_at = $1",
        "UPDATE lfs_objects SET created_at = $1",
        "UPDATE xet_xorbs SET created_at = $1, referenced_at = $1",
        "UPDATE xet_files SET created_at = $1",
        "UPDATE xet_file_repos SET registered_at = $1",
    ] {
        sqlx::query(sql).bind(old).execute(hub.state.db.pool()).await.unwrap();
    }
    let dry = hub_server::gc::collect(&hub.state, true).await.unwrap();
    let names = |v: &[(String, u64)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&dry.lfs_objects), vec![orphan_oid.clone()]);
    assert_eq!(names(&dry.xorbs), vec![gx.hex()]);
    assert_eq!(dry.shards.len(), 1);
    assert!(hub.state.storage.object_size(&orphan_oid).await.unwrap().is_some(), "a dry run deletes nothing");

    let report = hub_server::gc::collect(&hub.state, false).await.unwrap();
    assert_eq!(names(&report.lfs_objects), vec![orphan_oid.clone()]);
    assert_eq!(names(&report.xorbs), vec![gx.hex()]);
    assert_eq!(report.bytes(), orphan.len() as u64 + gx.body.len() as u64);
    assert!(hub.state.storage.object_size(&orphan_oid).await.unwrap().is_none());
    assert!(hub.state.storage.list_xorbs().await.unwrap().iter().all(|o| o.name != gx.hex()));
    // What is reachable still downloads, both kinds.
    assert_eq!(&hub.get(&format!("/{repo}/resolve/main/k.bin"), None).await.body[..], &kept[..]);
    assert_eq!(&hub.get(&format!("/{repo}/resolve/main/x.bin"), None).await.body[..], &data(11, 70_000)[..]);
    // The deleted xorb no longer answers dedup queries.
    let read = xet_token(&hub, &repo, None, false).await;
    assert_eq!(hub.get(&format!("/xet/v1/chunks/default/{}", gx.hashes[0].hex()), Some(&read)).await.status, StatusCode::NOT_FOUND);
    // A second run finds nothing more.
    let again = hub_server::gc::collect(&hub.state, false).await.unwrap();
    assert!(again.lfs_objects.is_empty() && again.xorbs.is_empty(), "{again:?}");
}

backend_tests!(
    lfs_objects_cannot_be_read_by_oid_from_other_repos,
    lfs_file_lines_and_pointer_text_need_a_readable_holder,
    deleted_and_reprivatised_repos_stop_sharing,
    pushed_pointers_need_a_readable_holder,
    xet_upload_download_and_every_non_xet_path,
    xet_refusals_are_4xx_and_change_nothing,
    garbage_collection_keeps_what_is_reachable,
);
