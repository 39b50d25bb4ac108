//! hub-client's Xet transfers against a real `hub-server serve` process, every request seen by a
//! recording proxy in front of it: upload and download through Xet, dedup of edited and
//! identical re-uploads (local shard cache and the CAS's global dedup), LFS and plain HTTP when
//! the hub has no Xet, and files exchanged with huggingface_hub + hf_xet in both directions.
#![allow(clippy::unwrap_used)]

use hub_client::{HubClient, RepoType, UploadFile};
use sha2::Digest;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(path.exists(), "{} is missing: build it first (cargo build --workspace)", path.display());
    path
}

struct Hub {
    _dir: tempfile::TempDir,
    process: Child,
    addr: String,
    token: String,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Hub {
    fn start() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let bin = sibling_binary("hub-server");
        let cli = |args: &[&str]| {
            let out = Command::new(&bin).args(args).env("HUB_DATA_DIR", dir.path()).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        cli(&["user", "create", "alice"]);
        let token = cli(&["token", "create", "alice"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new(&bin)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("HUB_DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..400 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Hub { _dir: dir, process, addr: format!("127.0.0.1:{port}"), token }
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    length: u64,
    authorized: bool,
    range: Option<String>,
    status: u16,
}

/// How the proxy bends the hub's answers.
#[derive(Clone, Copy, Default)]
struct Bend {
    /// Answer the token routes as a hub without them does (404, `X-Error-Code: RepoNotFound`,
    /// from the catch-all of /api paths).
    without_xet: bool,
    /// Answer 404 on /v2/reconstructions, as a CAS with only /v1 does.
    only_v1: bool,
    /// Answer 403 (an expired signed URL) to this many xorb range requests first.
    expire_ranges: usize,
    /// Hold each xorb range request this long.
    range_delay_ms: u64,
    /// Refuse shard uploads (400), as a CAS does when a referenced xorb is gone.
    refuse_shards: bool,
}

/// An HTTP/1.1 relay in front of the hub that records every request (forcing one request per
/// connection), and bends answers as `Bend` says.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    fn start(hub: &Hub, bend: Bend) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (target, log) = (hub.addr.clone(), seen.clone());
        let expired = Arc::new(Mutex::new(bend.expire_ranges));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let (target, log, expired) = (target.clone(), log.clone(), expired.clone());
                std::thread::spawn(move || relay(client, &target, &log, bend, &expired));
            }
        });
        Proxy { url, seen }
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn answer(client: &mut TcpStream, status: &str, extra: &str) {
    let body = r#"{"error":"bent by the test proxy"}"#;
    let text = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(text.as_bytes());
}

fn relay(mut client: TcpStream, target: &str, log: &Mutex<Vec<Seen>>, bend: Bend, expired: &Mutex<usize>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let body_start = loop {
        let Ok(n) = client.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_string();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, path) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let header = |name: &str| {
        text.split("\r\n")
            .skip(1)
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
    };
    let mut seen = Seen {
        method,
        path: path.clone(),
        length: header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0),
        authorized: header("authorization").is_some(),
        range: header("range"),
        status: 0,
    };
    let is_range = path.starts_with("/xet/v1/xorb-ranges/");
    let expire = is_range && {
        let mut left = expired.lock().unwrap();
        let hit = *left > 0;
        *left = left.saturating_sub(1);
        hit
    };
    let bent = if bend.without_xet && (path.contains("/xet-write-token/") || path.contains("/xet-read-token/")) {
        answer(&mut client, "404 Not Found", "X-Error-Code: RepoNotFound\r\n");
        Some(404)
    } else if bend.only_v1 && path.starts_with("/xet/v2/reconstructions/") {
        answer(&mut client, "404 Not Found", "");
        Some(404)
    } else if bend.refuse_shards && path == "/xet/v1/shards" {
        answer(&mut client, "400 Bad Request", "");
        Some(400)
    } else if expire {
        answer(&mut client, "403 Forbidden", "");
        Some(403)
    } else {
        None
    };
    if let Some(status) = bent {
        seen.status = status;
        log.lock().unwrap().push(seen);
        return;
    }
    if is_range {
        std::thread::sleep(std::time::Duration::from_millis(bend.range_delay_ms));
    }
    let Ok(mut server) = TcpStream::connect(target) else { return };
    let rewritten: String = text
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        + "Connection: close\r\n\r\n";
    if server.write_all(rewritten.as_bytes()).is_err() || server.write_all(&head[body_start..]).is_err() {
        return;
    }
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
    });
    // Recorded before the answer is relayed: the client may act on it at once.
    let mut first = [0u8; 12];
    let n = server.read(&mut first).unwrap_or(0);
    seen.status = String::from_utf8_lossy(&first[..n]).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    log.lock().unwrap().push(seen);
    if client.write_all(&first[..n]).is_err() {
        return;
    }
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
}

fn client(proxy: &Proxy, hub: &Hub, dir: &Path) -> HubClient {
    HubClient::builder()
        .endpoint(&proxy.url)
        .token(Some(hub.token.clone()))
        .cache_dir(dir.join("hub"))
        .xet_cache_dir(dir.join("xet"))
        .build()
        .unwrap()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// 60 % random, 40 % smooth float32 (compressible, so both compression schemes get used).
fn weights(n: usize, seed: u64) -> Vec<u8> {
    let mut out = random_bytes(n * 6 / 10, seed);
    let floats = (n - out.len()).div_ceil(4);
    out.extend((0..floats).flat_map(|i| ((i as f32) * 0.001 + seed as f32).sin().to_le_bytes()));
    out.truncate(n);
    out
}

/// Changes 2 % of `data` in 20 regions, leaving the first `keep` bytes alone.
fn edit(data: &[u8], keep: usize, seed: u64) -> Vec<u8> {
    let mut out = data.to_vec();
    let region = data.len() / 1000;
    for i in 0..20 {
        let at = keep + (data.len() - keep - region) / 20 * i + (seed as usize * 7919 + i * 104_729) % 1000;
        for (j, b) in out[at..at + region].iter_mut().enumerate() {
            *b = b.wrapping_add((j as u8 ^ seed as u8) | 1);
        }
    }
    out
}

fn upload(c: &HubClient, repo: &str, dir: &Path, name: &str, data: &[u8]) -> hub_client::CommitInfo {
    let local = dir.join(name);
    std::fs::write(&local, data).unwrap();
    let files = vec![UploadFile { local, path_in_repo: name.to_string() }];
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(c.model(repo).upload_files(files, &[], &format!("Upload {name}"), None)).unwrap()
}

fn download(c: &HubClient, repo: &str, name: &str) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    std::fs::read(rt.block_on(c.model(repo).get(name)).unwrap()).unwrap()
}

fn create_repo(c: &HubClient, repo: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(c.create_repo(RepoType::Model, repo, false, false)).unwrap();
}

fn xorb_bytes(seen: &[Seen]) -> (usize, u64) {
    let xorbs: Vec<&Seen> = seen.iter().filter(|s| s.method == "POST" && s.path.starts_with("/xet/v1/xorbs/default/")).collect();
    assert!(xorbs.iter().all(|s| s.status == 200), "{xorbs:?}");
    (xorbs.len(), xorbs.iter().map(|s| s.length).sum())
}

fn count(seen: &[Seen], method: &str, prefix: &str) -> usize {
    seen.iter().filter(|s| s.method == method && s.path.starts_with(prefix)).count()
}

#[test]
fn xet_upload_dedup_and_download() {
    let hub = Hub::start();
    let proxy = Proxy::start(&hub, Bend::default());
    let tmp = tempfile::tempdir().unwrap();
    let up = client(&proxy, &hub, &tmp.path().join("up"));
    create_repo(&up, "alice/xet");
    let size = 20 * 1024 * 1024 + 12_345;
    let original = weights(size, 1);
    proxy.take();

    // First upload: token, global-dedup query of the first chunk (nothing there yet), xorbs,
    // one shard, the commit naming the SHA-256.
    let info = upload(&up, "alice/xet", tmp.path(), "model.bin", &original);
    let stats = info.xet.clone().expect("went through Xet");
    let seen = proxy.take();
    assert_eq!(count(&seen, "GET", "/api/models/alice/xet/xet-write-token/main"), 1, "{seen:#?}");
    assert_eq!(count(&seen, "POST", "/alice/xet.git/info/lfs/objects/batch"), 0, "no LFS");
    assert!(seen.iter().any(|s| s.path.starts_with("/xet/v1/chunks/default/") && s.status == 404 && s.authorized));
    let (n, first_sent) = xorb_bytes(&seen);
    let sent = first_sent;
    assert!(n >= 1 && n == stats.xorbs, "{n} xorbs, stats {stats:?}");
    assert!(sent < size as u64, "compression saved something: {sent} of {size}");
    assert_eq!(sent, stats.xorb_bytes);
    assert_eq!(count(&seen, "POST", "/xet/v1/shards"), 1);
    assert!(seen.iter().filter(|s| s.path.starts_with("/xet/")).all(|s| s.authorized));
    let commit_at = seen.iter().position(|s| s.path.starts_with("/api/models/alice/xet/commit/")).unwrap();
    let shard_at = seen.iter().position(|s| s.path == "/xet/v1/shards").unwrap();
    assert!(shard_at < commit_at, "the shard is registered before the commit");

    // The hub lists the Xet hash hf_xet would compute.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tree = rt.block_on(up.model("alice/xet").tree("", false)).unwrap();
    let entry = tree.iter().find(|e| e.path == "model.bin").unwrap();
    let expected = hub_client::xet::hash_file(&tmp.path().join("model.bin")).unwrap();
    assert_eq!(entry.xet_hash.as_deref(), Some(expected.xet_hash.as_str()));
    assert_eq!(entry.lfs.as_ref().unwrap().oid, sha256(&original));

    // Download with fresh caches: HEAD, read token, reconstruction, signed ranges without the
    // hub token; never the file from /resolve.
    let down = client(&proxy, &hub, &tmp.path().join("down"));
    assert_eq!(download(&down, "alice/xet", "model.bin"), original);
    let seen = proxy.take();
    assert!(seen.iter().any(|s| s.method == "HEAD" && s.path.contains("/resolve/main/model.bin")));
    assert_eq!(count(&seen, "GET", "/api/models/alice/xet/xet-read-token/"), 1, "{seen:#?}");
    assert!(count(&seen, "GET", "/xet/v2/reconstructions/") >= 1);
    let ranges: Vec<&Seen> = seen.iter().filter(|s| s.path.starts_with("/xet/v1/xorb-ranges/")).collect();
    assert!(!ranges.is_empty());
    assert!(ranges.iter().all(|s| !s.authorized && s.range.is_some() && s.status == 206), "{ranges:?}");
    assert_eq!(seen.iter().filter(|s| s.method == "GET" && s.path.contains("/resolve/")).count(), 0);
    let blob = tmp.path().join("down/hub/models--alice--xet/blobs").join(sha256(&original));
    assert!(blob.is_file());

    // Ranged reconstructions: 1 MiB blocks start and end inside chunks.
    let small_blocks = HubClient::builder()
        .endpoint(&proxy.url)
        .token(Some(hub.token.clone()))
        .cache_dir(tmp.path().join("down-1m"))
        .chunk_size(1024 * 1024)
        .build()
        .unwrap();
    assert_eq!(download(&small_blocks, "alice/xet", "model.bin"), original);
    assert!(count(&proxy.take(), "GET", "/xet/v2/reconstructions/") >= 20);

    // A 2 %-edited copy, same machine: the shard cache dedups all but the chunks around the
    // 20 edits (each ~21 KB, touching two or three chunks of ~64 KiB: hf_xet sends as much).
    let edited = edit(&original, 0, 2);
    let stats = upload(&up, "alice/xet", tmp.path(), "edited.bin", &edited).xet.unwrap();
    let (_, sent) = xorb_bytes(&proxy.take());
    assert!(sent < first_sent / 5 && stats.new_bytes < 20 * (21_000 + 3 * 65_536), "sent {sent} of {first_sent}: {stats:?}");
    assert!(stats.deduplicated_bytes > size as u64 * 8 / 10, "{stats:?}");
    assert_eq!(download(&down, "alice/xet", "edited.bin"), edited);

    // An identical copy: no xorb at all, still a shard, and the commit.
    let stats = upload(&up, "alice/xet", tmp.path(), "copy.bin", &original).xet.unwrap();
    let seen = proxy.take();
    assert_eq!(xorb_bytes(&seen), (0, 0), "{stats:?}");
    assert_eq!(count(&seen, "POST", "/xet/v1/shards"), 1);
    assert_eq!(stats.new_bytes, 0);
    assert_eq!(download(&down, "alice/xet", "copy.bin"), original);

    // Another machine (empty shard cache), another edit: the CAS's dedup answer for the first
    // chunk (a keyed shard) dedups the rest.
    let other = client(&proxy, &hub, &tmp.path().join("other"));
    let edited2 = edit(&original, 256 * 1024, 3);
    let stats = upload(&other, "alice/xet", tmp.path(), "edited2.bin", &edited2).xet.unwrap();
    let seen = proxy.take();
    assert!(seen.iter().any(|s| s.path.starts_with("/xet/v1/chunks/default/") && s.status == 200), "{seen:#?}");
    let (_, sent) = xorb_bytes(&seen);
    assert!(sent < first_sent / 5 && stats.new_bytes < 20 * (21_000 + 3 * 65_536), "sent {sent} of {first_sent}: {stats:?}");
    assert!(stats.dedup_hits >= 1);
    assert_eq!(download(&down, "alice/xet", "edited2.bin"), edited2);

    // A snapshot finds the Xet hashes in the tree listing and downloads every file through Xet.
    let snap_client = client(&proxy, &hub, &tmp.path().join("snap"));
    let dir = rt.block_on(snap_client.model("alice/xet").snapshot(&[], &[])).unwrap();
    assert_eq!(std::fs::read(dir.join("edited2.bin")).unwrap(), edited2);
    assert_eq!(std::fs::read(dir.join("copy.bin")).unwrap(), original);
    let seen = proxy.take();
    let over_http: Vec<&str> = seen.iter().filter(|s| s.method == "GET" && s.path.contains("/resolve/")).map(|s| s.path.as_str()).collect();
    assert!(over_http.iter().all(|p| p.ends_with("/.gitattributes")), "{over_http:?}");
    assert!(count(&seen, "GET", "/api/models/alice/xet/xet-read-token/") >= 4);
}

#[test]
fn a_hub_without_xet_gets_lfs_and_plain_downloads() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = weights(12 * 1024 * 1024 + 7, 4);

    // The token routes answer as on a hub that has none: LFS upload, HTTP download.
    let no_xet = Proxy::start(&hub, Bend { without_xet: true, ..Bend::default() });
    let c = client(&no_xet, &hub, &tmp.path().join("a"));
    create_repo(&c, "alice/plain");
    let info = upload(&c, "alice/plain", tmp.path(), "w.bin", &data);
    assert!(info.xet.is_none());
    let seen = no_xet.take();
    assert_eq!(count(&seen, "GET", "/api/models/alice/plain/xet-write-token/"), 1);
    assert_eq!(count(&seen, "POST", "/alice/plain.git/info/lfs/objects/batch"), 1, "{seen:#?}");
    assert!(seen.iter().all(|s| !s.path.starts_with("/xet/")));
    assert_eq!(download(&client(&no_xet, &hub, &tmp.path().join("b")), "alice/plain", "w.bin"), data);
    assert!(no_xet.take().iter().any(|s| s.method == "GET" && s.path.contains("/resolve/")));

    // A Xet-backed file (other bytes: the same would resolve to the LFS object), its read
    // token refused: the hub streams it over /resolve instead.
    let proxy = Proxy::start(&hub, Bend::default());
    let data = weights(12 * 1024 * 1024 + 7, 8);
    assert!(upload(&client(&proxy, &hub, &tmp.path().join("c")), "alice/plain", tmp.path(), "x.bin", &data).xet.is_some());
    assert_eq!(download(&client(&no_xet, &hub, &tmp.path().join("d")), "alice/plain", "x.bin"), data);
    let seen = no_xet.take();
    assert_eq!(count(&seen, "GET", "/api/models/alice/plain/xet-read-token/"), 1, "{seen:#?}");
    assert!(seen.iter().all(|s| !s.path.starts_with("/xet/")));

    // .xet(false) keeps to LFS and HTTP on a hub that has Xet.
    proxy.take();
    let off = HubClient::builder()
        .endpoint(&proxy.url)
        .token(Some(hub.token.clone()))
        .cache_dir(tmp.path().join("e"))
        .xet_cache_dir(tmp.path().join("e-xet"))
        .xet(false)
        .build()
        .unwrap();
    assert!(upload(&off, "alice/plain", tmp.path(), "y.bin", &data).xet.is_none());
    assert_eq!(download(&off, "alice/plain", "x.bin"), data);
    let seen = proxy.take();
    assert!(seen.iter().all(|s| !s.path.contains("xet")), "{seen:#?}");
    assert_eq!(count(&seen, "POST", "/alice/plain.git/info/lfs/objects/batch"), 1);
}

#[test]
fn an_interrupted_xet_download_resumes() {
    let hub = Hub::start();
    // Slow ranges, so the download is surely cut part-way.
    let proxy = Proxy::start(&hub, Bend { range_delay_ms: 150, ..Bend::default() });
    let tmp = tempfile::tempdir().unwrap();
    let data = weights(9 * 1024 * 1024, 5);
    let up = client(&proxy, &hub, &tmp.path().join("up"));
    create_repo(&up, "alice/resume");
    upload(&up, "alice/resume", tmp.path(), "w.bin", &data);

    // A download in 1 MiB blocks, stopped once a few are written.
    let cache = tmp.path().join("cache");
    let builder = || HubClient::builder().token(Some(hub.token.clone())).cache_dir(&cache).chunk_size(1024 * 1024).max_parallel_chunks(1);
    let c = builder().endpoint(&proxy.url).build().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let blobs = cache.join("models--alice--resume/blobs");
    let parts = blobs.join(format!("{}.incomplete.parts", sha256(&data)));
    let task = rt.spawn({
        let c = c.clone();
        async move { c.model("alice/resume").get("w.bin").await }
    });
    while std::fs::read_to_string(&parts).unwrap_or_default().lines().count() < 3 && !task.is_finished() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    task.abort();
    let _ = rt.block_on(task);
    let done: Vec<String> = std::fs::read_to_string(&parts).unwrap().lines().map(str::to_string).collect();
    assert!(done.len() >= 3 && done.len() < 9, "{done:?}");
    assert!(c.model("alice/resume").cached("w.bin").is_none(), "nothing under snapshots/ yet");

    // The next attempt asks only for the blocks still missing, and the result checks out.
    std::thread::sleep(std::time::Duration::from_millis(1000)); // requests of the first attempt still in the proxy
    proxy.take();
    assert_eq!(download(&c, "alice/resume", "w.bin"), data);
    let seen = proxy.take();
    let asked: Vec<&str> =
        seen.iter().filter(|s| s.path.starts_with("/xet/v2/reconstructions/")).filter_map(|s| s.range.as_deref()).collect();
    assert_eq!(asked.len(), 9 - done.len(), "{asked:?} {seen:#?}");
    for i in &done {
        let start = i.parse::<u64>().unwrap() * 1024 * 1024;
        assert!(!asked.iter().any(|r| r.starts_with(&format!("bytes={start}-"))), "block {i} fetched again");
    }
    assert!(!parts.exists());
}

#[test]
fn the_cli_uploads_through_xet_unless_hf_hub_disable_xet() {
    let hub = Hub::start();
    let proxy = Proxy::start(&hub, Bend::default());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("w.bin");
    std::fs::write(&file, weights(3_000_000, 12)).unwrap();
    let hub_cli = |disable: Option<&str>, repo: &str| {
        let mut cmd = Command::new(sibling_binary("hub"));
        cmd.args(["upload", repo, file.to_str().unwrap()])
            .env("HF_ENDPOINT", &proxy.url)
            .env("HF_TOKEN", &hub.token)
            .env("HF_HOME", tmp.path().join("home"))
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_XET_CACHE")
            .env_remove("HF_HUB_DISABLE_XET");
        if let Some(v) = disable {
            cmd.env("HF_HUB_DISABLE_XET", v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = hub_cli(None, "alice/cli-xet");
    assert!(said.contains("Xet: 0 B of 2.86 MiB already on the hub"), "{said}");
    let seen = proxy.take();
    assert_eq!(count(&seen, "POST", "/xet/v1/shards"), 1);
    assert!(tmp.path().join("home/xet").is_dir(), "hf_xet's cache place under HF_HOME");

    let said = hub_cli(Some("1"), "alice/cli-lfs");
    assert!(!said.contains("Xet"), "{said}");
    let seen = proxy.take();
    assert!(seen.iter().all(|s| !s.path.contains("xet")), "{seen:#?}");
    assert_eq!(count(&seen, "POST", "/alice/cli-lfs.git/info/lfs/objects/batch"), 1);
}

#[test]
fn a_file_larger_than_a_xorb_spans_several() {
    let hub = Hub::start();
    let proxy = Proxy::start(&hub, Bend::default());
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&proxy, &hub, &tmp.path().join("c"));
    create_repo(&c, "alice/big");
    // Incompressible and over 64 MiB: the xorb is sealed mid-file and the next one opened.
    let data = random_bytes(70 * 1024 * 1024, 13);
    let stats = upload(&c, "alice/big", tmp.path(), "big.bin", &data).xet.unwrap();
    let (n, sent) = xorb_bytes(&proxy.take());
    assert_eq!((n, stats.xorbs), (2, 2));
    assert!(sent > data.len() as u64, "raw chunks carry their headers: {sent}");
    assert_eq!(download(&client(&proxy, &hub, &tmp.path().join("d")), "alice/big", "big.bin"), data);
}

#[test]
fn a_refused_shard_clears_the_shard_cache() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&hub, Bend::default());
    let c = client(&proxy, &hub, &tmp.path().join("c"));
    create_repo(&c, "alice/heal");
    upload(&c, "alice/heal", tmp.path(), "a.bin", &weights(3_000_000, 10));
    let first_cache = std::fs::read_dir(tmp.path().join("c/xet")).unwrap().next().unwrap().unwrap().path().join("shard-cache");
    assert!(std::fs::read_dir(&first_cache).unwrap().count() >= 1, "the upload's shard is cached");

    // The CAS refuses the next shard: the error says what happened and what to do, and the
    // cache that may hold a stale promise is gone. (Another proxy is another CAS URL, hence
    // another cache directory, named as hf_xet names it: filled here with the same shards.)
    let refusing = Proxy::start(&hub, Bend { refuse_shards: true, ..Bend::default() });
    let cas_url = format!("{}/xet", refusing.url);
    let prefix: String = cas_url.chars().take(16).map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    let hash = xet_core_structures::merklehash::compute_data_hash(cas_url.as_bytes()).base64();
    let cache = tmp.path().join("c/xet").join(format!("{prefix}-{}", &hash[..16])).join("shard-cache");
    std::fs::create_dir_all(&cache).unwrap();
    for e in std::fs::read_dir(&first_cache).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, cache.join(p.file_name().unwrap())).unwrap();
    }
    let c2 = client(&refusing, &hub, &tmp.path().join("c"));
    let local = tmp.path().join("b.bin");
    std::fs::write(&local, weights(2_000_000, 11)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let err = rt
        .block_on(c2.model("alice/heal").upload_files(vec![UploadFile { local, path_in_repo: "b.bin".into() }], &[], "b", None))
        .unwrap_err();
    assert!(matches!(&err, hub_client::HubError::Http { status: 400, message, .. } if message.contains("retry")), "{err}");
    assert!(!cache.exists());
    assert!(upload(&c, "alice/heal", tmp.path(), "b.bin", &weights(2_000_000, 11)).xet.is_some());
}

#[test]
fn downloads_fall_back_to_v1_and_renew_expired_urls() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = weights(5 * 1024 * 1024 + 9, 9);
    let proxy = Proxy::start(&hub, Bend::default());
    let up = client(&proxy, &hub, &tmp.path().join("up"));
    create_repo(&up, "alice/v1");
    upload(&up, "alice/v1", tmp.path(), "w.bin", &data);

    // A CAS with only /v1/reconstructions, and signed URLs that expire twice: the client asks
    // v2 once, then v1, and asks again for fresh URLs after each 403.
    let bent = Proxy::start(&hub, Bend { only_v1: true, expire_ranges: 2, ..Bend::default() });
    assert_eq!(download(&client(&bent, &hub, &tmp.path().join("down")), "alice/v1", "w.bin"), data);
    let seen = bent.take();
    assert_eq!(count(&seen, "GET", "/xet/v2/reconstructions/"), 1, "{seen:#?}");
    assert_eq!(count(&seen, "GET", "/xet/v1/reconstructions/"), 3, "{seen:#?}");
    assert_eq!(seen.iter().filter(|s| s.path.starts_with("/xet/v1/xorb-ranges/") && s.status == 403).count(), 2);
}

fn python() -> PathBuf {
    let venv = std::env::var("HUB_CONFORMANCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hub-conformance-venv"));
    let py = venv.join("bin/python");
    assert!(py.exists(), "{} missing: run the test command (scripts/test), which creates it", py.display());
    py
}

/// huggingface_hub with hf_xet (Xet enabled), in its own HF_HOME.
fn run_python(endpoint: &str, token: &str, home: &Path, code: &str) -> String {
    let out = Command::new(python())
        .args(["-c", code])
        .env("HF_ENDPOINT", endpoint)
        .env("HF_TOKEN", token)
        .env("HF_HOME", home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_XET_CACHE")
        .env_remove("HF_HUB_DISABLE_XET")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn files_cross_between_hub_client_and_huggingface_hub_through_xet() {
    let hub = Hub::start();
    let proxy = Proxy::start(&hub, Bend::default());
    let tmp = tempfile::tempdir().unwrap();
    let py_home = tmp.path().join("py-home");
    // hub-client shares hf_xet's shard cache when pointed at the same HF_HOME.
    let c = HubClient::builder()
        .endpoint(&proxy.url)
        .token(Some(hub.token.clone()))
        .cache_dir(tmp.path().join("rs-hub"))
        .xet_cache_dir(py_home.join("xet"))
        .build()
        .unwrap();
    create_repo(&c, "alice/both");

    // hub-client uploads through Xet; huggingface_hub downloads through Xet.
    let ours = weights(6 * 1024 * 1024 + 1, 6);
    assert!(upload(&c, "alice/both", tmp.path(), "ours.bin", &ours).xet.is_some());
    proxy.take();
    let code = "from huggingface_hub import hf_hub_download\nprint(hf_hub_download('alice/both', 'ours.bin'))";
    let path = run_python(&proxy.url, &hub.token, &py_home, code);
    assert_eq!(std::fs::read(path).unwrap(), ours);
    assert!(count(&proxy.take(), "GET", "/xet/v2/reconstructions/") >= 1, "Python went through Xet");

    // hf_xet reads the shard hub-client left in the shared cache: the same bytes again send
    // nothing, and it asks the CAS nothing either.
    std::fs::write(tmp.path().join("ours-again.bin"), &ours).unwrap();
    let code = format!(
        "from huggingface_hub import HfApi\nHfApi().upload_file(path_or_fileobj={:?}, path_in_repo='ours-again.bin', repo_id='alice/both')",
        tmp.path().join("ours-again.bin").to_str().unwrap()
    );
    run_python(&proxy.url, &hub.token, &py_home, &code);
    let seen = proxy.take();
    assert_eq!(xorb_bytes(&seen), (0, 0));
    assert_eq!(count(&seen, "GET", "/xet/v1/chunks/"), 0, "{seen:#?}");
    assert_eq!(count(&seen, "POST", "/xet/v1/shards"), 1);

    // huggingface_hub uploads through Xet; hub-client downloads through Xet.
    let theirs = weights(7 * 1024 * 1024 + 3, 7);
    std::fs::write(tmp.path().join("theirs.bin"), &theirs).unwrap();
    let code = format!(
        "from huggingface_hub import HfApi\nHfApi().upload_file(path_or_fileobj={:?}, path_in_repo='theirs.bin', repo_id='alice/both')",
        tmp.path().join("theirs.bin").to_str().unwrap()
    );
    run_python(&proxy.url, &hub.token, &py_home, &code);
    assert!(xorb_bytes(&proxy.take()).0 >= 1, "Python uploaded xorbs");
    let fresh = client(&proxy, &hub, &tmp.path().join("fresh"));
    assert_eq!(download(&fresh, "alice/both", "theirs.bin"), theirs);
    assert!(count(&proxy.take(), "GET", "/xet/v2/reconstructions/") >= 1);

    // The same bytes again from hub-client: hf_xet's shard cache already knows every chunk (so
    // not even the CAS is asked).
    let stats = upload(&c, "alice/both", tmp.path(), "theirs-again.bin", &theirs).xet.unwrap();
    assert_eq!(xorb_bytes(&proxy.take()), (0, 0), "{stats:?}");
    assert_eq!(stats.dedup_queries, 0, "{stats:?}");
    let code = "from huggingface_hub import hf_hub_download\nprint(hf_hub_download('alice/both', 'theirs-again.bin'))";
    assert_eq!(std::fs::read(run_python(&proxy.url, &hub.token, &py_home, code)).unwrap(), theirs);
}
