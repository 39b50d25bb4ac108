//! hub-client against a real `hub-server serve` process: get, snapshot, from_pretrained with
//! sharded weights, resume after an interrupted download, offline mode, the cache shared with
//! Python's huggingface_hub in both directions, each error type, and the `hub` CLI.
#![allow(clippy::unwrap_used)]

use hub_client::{HubClient, HubError, RepoType, UploadFile};
use sha2::Digest;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A binary built beside this test (target/debug/<name>).
fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build it first (cargo build --workspace)", path.display());
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Hub {
    _dir: tempfile::TempDir,
    process: Child,
    url: String,
    token: String,
    other_token: String,
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
        cli(&["user", "create", "bob"]);
        let token = cli(&["token", "create", "alice"]);
        let other_token = cli(&["token", "create", "bob"]);
        let port = free_port();
        let process = Command::new(&bin)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("HUB_DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            // Small multipart settings, so uploads of the larger test files take that path.
            .env("HUB_LFS_MULTIPART_THRESHOLD", (8 * 1024 * 1024).to_string())
            .env("HUB_LFS_PART_SIZE", (5 * 1024 * 1024).to_string())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Hub { _dir: dir, process, url, token, other_token }
    }

    /// Xet's shard cache goes beside the hub cache, not into the user's home.
    fn client(&self, cache: &Path) -> HubClient {
        HubClient::builder()
            .endpoint(&self.url)
            .token(Some(self.token.clone()))
            .cache_dir(cache)
            .xet_cache_dir(cache.with_extension("xet"))
            .build()
            .unwrap()
    }
}

fn sha256(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
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

/// A model folder with a sharded safetensors checkpoint and files from_pretrained must skip.
fn model_folder(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        ("config.json".to_string(), br#"{"model_type": "bert", "hidden_size": 8}"#.to_vec()),
        ("tokenizer.json".to_string(), br#"{"version": "1.0"}"#.to_vec()),
        ("model-00001-of-00002.safetensors".to_string(), random_bytes(3_000_000, 1)),
        ("model-00002-of-00002.safetensors".to_string(), random_bytes(1_000_000, 2)),
        (
            "model.safetensors.index.json".to_string(),
            br#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}"#.to_vec(),
        ),
        ("training_args.bin".to_string(), random_bytes(1000, 3)),
        ("notes/readme.txt".to_string(), b"not needed to load the model".to_vec()),
    ];
    for (rel, data) in &files {
        write(dir, rel, data);
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_snapshot_and_from_pretrained() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let client = hub.client(&tmp.path().join("cache"));
    client.create_repo(RepoType::Model, "alice/tiny", false, false).await.unwrap();
    let src = tmp.path().join("src");
    let files = model_folder(&src);
    let commit = client.model("alice/tiny").upload_folder(&src, "", "Upload model").await.unwrap();

    // get: a path under snapshots/<commit>/, its blob named by ETag (sha256 for LFS files).
    let repo = client.model("alice/tiny");
    let config = repo.get("config.json").await.unwrap();
    assert!(config.ends_with(format!("snapshots/{}/config.json", commit.commit)), "{}", config.display());
    let shard = repo.get("model-00002-of-00002.safetensors").await.unwrap();
    let blob = std::fs::canonicalize(&shard).unwrap();
    assert_eq!(blob.file_name().unwrap().to_string_lossy(), sha256(&files[3].1));
    assert_eq!(std::fs::read_link(&shard).unwrap(), Path::new("../../blobs").join(sha256(&files[3].1)));
    let refs = tmp.path().join("cache/models--alice--tiny/refs/main");
    assert_eq!(std::fs::read_to_string(refs).unwrap(), commit.commit);

    // from_pretrained: config, tokenizer, index and every shard it names; nothing else.
    let fresh = hub.client(&tmp.path().join("cache2"));
    let dir = fresh.model("alice/tiny").from_pretrained().await.unwrap();
    let mut got: Vec<String> = walk(&dir);
    got.sort();
    assert_eq!(
        got,
        [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json"
        ]
    );
    for (rel, data) in &files[..5] {
        assert_eq!(&std::fs::read(dir.join(rel)).unwrap(), data, "{rel}");
    }

    // snapshot with patterns.
    let snap = fresh.model("alice/tiny").snapshot(&["notes/*", "*.json"], &["tokenizer.json"]).await.unwrap();
    let mut got = walk(&snap);
    got.sort();
    assert!(got.contains(&"notes/readme.txt".to_string()) && !got.contains(&"training_args.bin".to_string()));

    // Offline: the same paths without the network; anything else is NotCached.
    let offline = HubClient::builder().endpoint("http://127.0.0.1:9").cache_dir(tmp.path().join("cache2")).offline(true).build().unwrap();
    assert_eq!(offline.model("alice/tiny").from_pretrained().await.unwrap(), dir);
    assert_eq!(std::fs::read(offline.model("alice/tiny").get("config.json").await.unwrap()).unwrap(), files[0].1);
    assert!(matches!(offline.model("alice/other").get("config.json").await, Err(HubError::NotCached { .. })));
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let client = hub.client(tmp.path());
    client.create_repo(RepoType::Model, "alice/errs", false, false).await.unwrap();
    client.create_repo(RepoType::Model, "alice/hidden", true, false).await.unwrap();
    let r = client.model("alice/errs");
    assert!(matches!(r.get("nope.bin").await, Err(HubError::EntryNotFound { .. })));
    assert!(matches!(r.at("no-such-branch").get(".gitattributes").await, Err(HubError::RevisionNotFound { .. })));
    assert!(matches!(client.model("alice/absent").get("config.json").await, Err(HubError::RepoNotFound { .. })));
    let anonymous = HubClient::builder().endpoint(&hub.url).cache_dir(tmp.path()).build().unwrap();
    assert!(matches!(anonymous.model("alice/hidden").get(".gitattributes").await, Err(HubError::RepoNotFound { .. })));
    let bad = HubClient::builder().endpoint(&hub.url).token(Some("hf_bad".into())).cache_dir(tmp.path()).build().unwrap();
    assert!(matches!(bad.whoami().await, Err(HubError::Unauthorized { .. })));
    let bob = HubClient::builder().endpoint(&hub.url).token(Some(hub.other_token.clone())).cache_dir(tmp.path()).build().unwrap();
    write(tmp.path(), "x.txt", b"x");
    let up = bob
        .model("alice/errs")
        .upload_files(vec![UploadFile { local: tmp.path().join("x.txt"), path_in_repo: "x.txt".into() }], &[], "x", None)
        .await;
    assert!(matches!(up, Err(HubError::Forbidden { .. })), "{up:?}");
    assert!(matches!(client.create_repo(RepoType::Model, "alice/errs", false, false).await, Err(HubError::Conflict { .. })));
    let unreachable = HubClient::builder().endpoint("http://127.0.0.1:9").cache_dir(tmp.path()).build().unwrap();
    assert!(matches!(unreachable.model("alice/errs").get("config.json").await, Err(HubError::Network(_))));
}

/// Relays TCP to the hub and cuts each connection after `limit` bytes of the answer.
fn cutting_proxy(target: String, limit: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            let target = target.clone();
            std::thread::spawn(move || {
                let Ok(mut server) = std::net::TcpStream::connect(target.trim_start_matches("http://")) else { return };
                let mut c2 = client.try_clone().unwrap();
                let mut s2 = server.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                });
                let mut sent = 0;
                let mut buf = vec![0u8; 64 * 1024];
                while sent < limit {
                    let n = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(limit - sent),
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

/// A hostile "hub" answering every request with names that try to leave the cache.
fn hostile_hub() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = vec![0u8; 16 * 1024];
            let n = c.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let commit = "a".repeat(40);
            let (head, body) = if request.starts_with("GET /api/models/evil/x/revision/") {
                let body = format!(
                    r#"{{"id":"evil/x","sha":"{commit}","siblings":[{{"rfilename":"../../../../escape.txt","size":1,"blobId":"{}"}}]}}"#,
                    "b".repeat(40)
                );
                ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n".to_string(), body)
            } else {
                let h = "HTTP/1.1 200 OK\r\nX-Repo-Commit: ../../../../evil\r\nX-Linked-Etag: \"../../../../blob\"\r\nX-Linked-Size: 1\r\n"
                    .to_string();
                (h, "x".to_string())
            };
            let _ = c.write_all(format!("{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_hub_cannot_write_outside_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("a/b/c/cache");
    let client = HubClient::builder().endpoint(hostile_hub()).cache_dir(&cache).xet(false).build().unwrap();
    let err = client.model("evil/x").snapshot(&[], &[]).await.unwrap_err();
    assert!(matches!(err, HubError::InvalidResponse(_)), "{err}");
    let err = client.model("evil/x").get("config.json").await.unwrap_err();
    assert!(matches!(err, HubError::InvalidResponse(_)), "{err}");
    let err = client.model("evil/x").get("../../escape.txt").await.unwrap_err();
    assert!(err.to_string().contains("not a path inside a repo"), "{err}");
    let written: Vec<String> = walk(dir.path()).into_iter().filter(|p| !p.starts_with("a/b/c/cache/")).collect();
    assert!(written.is_empty(), "written outside the cache: {written:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_downloads_resume() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    // Uploads of more than 8 MiB take the LFS multipart transfer, parts in parallel (without
    // Xet, which this hub would otherwise use); downloads are plain HTTP ranges.
    let client = HubClient::builder()
        .endpoint(&hub.url)
        .token(Some(hub.token.clone()))
        .cache_dir(tmp.path().join("up"))
        .single_put_limit(8 * 1024 * 1024)
        .xet(false)
        .build()
        .unwrap();
    client.create_repo(RepoType::Model, "alice/big", false, false).await.unwrap();
    let small = random_bytes(12 * 1024 * 1024, 7); // one GET, resumed with Range
    let large = random_bytes(40 * 1024 * 1024, 8); // parallel ranges, resumed by range
    write(tmp.path(), "src/small.bin", &small);
    write(tmp.path(), "src/large.bin", &large);
    client.model("alice/big").upload_folder(&tmp.path().join("src"), "", "big").await.unwrap();

    let cache = tmp.path().join("cache");
    let proxy = cutting_proxy(hub.url.trim_start_matches("http://").to_string(), 5 * 1024 * 1024);
    let cut =
        HubClient::builder().endpoint(&proxy).token(Some(hub.token.clone())).cache_dir(&cache).chunk_size(4 * 1024 * 1024).build().unwrap();
    let blobs = cache.join("models--alice--big/blobs");
    assert!(cut.model("alice/big").get("small.bin").await.is_err(), "the connection is cut mid-file");
    let partial = blobs.join(format!("{}.incomplete", sha256(&small)));
    let had = std::fs::metadata(&partial).unwrap().len();
    assert!(had > 0 && had < small.len() as u64, "a partial file remains: {had}");
    assert!(cut.model("alice/big").get("large.bin").await.is_err());
    let parts = std::fs::read_to_string(blobs.join(format!("{}.incomplete.parts", sha256(&large)))).unwrap_or_default();
    assert!(!parts.is_empty(), "some ranges finished before the cut");

    let direct = HubClient::builder()
        .endpoint(&hub.url)
        .token(Some(hub.token.clone()))
        .cache_dir(&cache)
        .chunk_size(4 * 1024 * 1024)
        .build()
        .unwrap();
    assert_eq!(std::fs::read(direct.model("alice/big").get("small.bin").await.unwrap()).unwrap(), small);
    assert_eq!(std::fs::read(direct.model("alice/big").get("large.bin").await.unwrap()).unwrap(), large);
    assert!(!partial.exists());

    // A corrupt partial file is caught by the hash check and never enters the cache.
    let cache2 = tmp.path().join("cache2");
    let c2 = HubClient::builder().endpoint(&hub.url).token(Some(hub.token.clone())).cache_dir(&cache2).build().unwrap();
    let blobs2 = cache2.join("models--alice--big/blobs");
    std::fs::create_dir_all(&blobs2).unwrap();
    std::fs::write(blobs2.join(format!("{}.incomplete", sha256(&small))), vec![0u8; 1024 * 1024]).unwrap();
    assert!(matches!(c2.model("alice/big").get("small.bin").await, Err(HubError::HashMismatch { .. })));
    assert!(!blobs2.join(sha256(&small)).exists());
    assert_eq!(std::fs::read(c2.model("alice/big").get("small.bin").await.unwrap()).unwrap(), small);
}

/// The conformance suite's virtualenv has huggingface_hub (the test command creates it).
fn python() -> PathBuf {
    let venv = std::env::var("HUB_CONFORMANCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hub-conformance-venv"));
    let py = venv.join("bin/python");
    assert!(py.exists(), "{} missing: run the test command (scripts/test), which creates it", py.display());
    py
}

fn run_python(hub: &Hub, cache: &Path, code: &str, offline: bool) -> String {
    let out = Command::new(python())
        .args(["-c", code])
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_TOKEN", &hub.token)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_shared_with_huggingface_hub_both_ways() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let client = hub.client(&cache);
    client.create_repo(RepoType::Model, "alice/shared", false, false).await.unwrap();
    let src = tmp.path().join("src");
    let files = model_folder(&src);
    client.model("alice/shared").upload_folder(&src, "", "shared").await.unwrap();

    // hub-client fills the cache; Python reads it with the network off.
    let snap = client.model("alice/shared").snapshot(&[], &[]).await.unwrap();
    let code = "from huggingface_hub import hf_hub_download, snapshot_download\n\
                p = hf_hub_download('alice/shared', 'model-00001-of-00002.safetensors', local_files_only=True)\n\
                print(p); print(snapshot_download('alice/shared', local_files_only=True))";
    let out = run_python(&hub, &cache, code, true);
    let mut lines = out.lines();
    assert_eq!(std::fs::read(lines.next().unwrap()).unwrap(), files[2].1);
    assert_eq!(PathBuf::from(lines.next().unwrap()), snap);

    // Python fills a cache; hub-client reads it offline.
    let py_cache = tmp.path().join("py-cache");
    let code = "from huggingface_hub import snapshot_download\nprint(snapshot_download('alice/shared'))";
    let py_snap = PathBuf::from(run_python(&hub, &py_cache, code, false));
    let offline = HubClient::builder().endpoint("http://127.0.0.1:9").cache_dir(&py_cache).offline(true).build().unwrap();
    let repo = offline.model("alice/shared");
    assert_eq!(repo.snapshot(&[], &[]).await.unwrap(), py_snap);
    assert_eq!(std::fs::read(repo.get("model-00002-of-00002.safetensors").await.unwrap()).unwrap(), files[3].1);
    assert_eq!(repo.from_pretrained().await.unwrap(), py_snap);
}

fn hub_cli(hub: &Hub, home: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(sibling_binary("hub"));
    cmd.args(args).env("HF_ENDPOINT", &hub.url).env("HF_HOME", home).env_remove("HF_TOKEN").env_remove("HF_HUB_CACHE");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_cli_end_to_end() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let (code, _, err) = hub_cli(&hub, &home, &["whoami"], None);
    assert_eq!(code, 4, "no token yet: {err}");
    let (code, _, err) = hub_cli(&hub, &home, &["login"], Some(&format!("{}\n", hub.token)));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Logged in as alice"));
    assert_eq!(std::fs::read_to_string(home.join("token")).unwrap(), hub.token, "saved where huggingface_hub reads it");
    assert_eq!(hub_cli(&hub, &home, &["whoami"], None).1.trim(), "alice");

    let src = tmp.path().join("src");
    let files = model_folder(&src);
    write(&src, ".gitignore", b"*.bin\n");
    let (code, out, err) = hub_cli(&hub, &home, &["upload", "alice/cli", src.to_str().unwrap(), "-q"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with(&format!("{}/alice/cli/commit/", hub.url)), "{out}");
    let (_, listing, _) = hub_cli(&hub, &home, &["ls", "alice/cli", "-R"], None);
    assert!(listing.contains("model-00001-of-00002.safetensors  (lfs)"), "{listing}");
    assert!(!listing.contains("training_args.bin"), ".gitignore is honoured: {listing}");

    let (code, out, _) = hub_cli(&hub, &home, &["download", "alice/cli", "config.json", "-q"], None);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(out.trim()).unwrap(), files[0].1);
    let local = tmp.path().join("local");
    let (code, _, err) =
        hub_cli(&hub, &home, &["download", "alice/cli", "--include", "*.json", "--local-dir", local.to_str().unwrap(), "-q"], None);
    assert_eq!(code, 0, "{err}");
    assert!(local.join("config.json").is_file() && !local.join("model-00002-of-00002.safetensors").exists());

    let (code, _, err) = hub_cli(&hub, &home, &["download", "alice/missing", "-q"], None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not found"), "{err}");
    let (code, out, _) = hub_cli(&hub, &home, &["repo", "create", "alice/made", "--private"], None);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("{}/alice/made", hub.url));
    assert_eq!(hub_cli(&hub, &home, &["repo", "create", "alice/made"], None).0, 1, "exists already");
    assert_eq!(hub_cli(&hub, &home, &["repo", "delete", "alice/made"], None).0, 0);
    assert_eq!(hub_cli(&hub, &home, &["repo", "delete", "alice/made"], None).0, 3);
    let (code, help, _) = hub_cli(&hub, &home, &["--help"], None);
    assert_eq!(code, 0);
    assert!(help.contains("download") && help.contains("HF_ENDPOINT"));
}

/// hf-hub 0.4 (what candle, tokenizers and most Rust ML crates pin) against our hub, unmodified:
/// its `Range: bytes=0-0` metadata probe, parallel ranged downloads ending one byte past EOF,
/// `info()` with `sha` and `siblings`, and a cache huggingface_hub and hub-client share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_hub_0_4_downloads_from_our_hub() {
    let hub = Hub::start();
    let tmp = tempfile::tempdir().unwrap();
    let client = hub.client(&tmp.path().join("up"));
    client.create_repo(RepoType::Model, "alice/candle", false, false).await.unwrap();
    let weights = random_bytes(25 * 1024 * 1024 + 17, 11);
    write(tmp.path(), "src/model.safetensors", &weights);
    write(tmp.path(), "src/config.json", b"{\"model_type\": \"bert\"}");
    write(tmp.path(), "src/empty.txt", b"");
    let commit = client.model("alice/candle").upload_folder(&tmp.path().join("src"), "", "weights").await.unwrap();

    let cache = tmp.path().join("hf-hub-cache");
    let api = hf_hub::api::tokio::ApiBuilder::new()
        .with_endpoint(hub.url.clone())
        .with_cache_dir(cache.clone())
        .with_token(Some(hub.token.clone()))
        .with_progress(false)
        .with_chunk_size(Some(4 * 1024 * 1024))
        .build()
        .unwrap();
    let repo = api.model("alice/candle".to_string());
    let info = repo.info().await.unwrap();
    assert_eq!(info.sha, commit.commit);
    assert!(info.siblings.iter().any(|s| s.rfilename == "model.safetensors"));
    assert_eq!(std::fs::read(repo.get("model.safetensors").await.unwrap()).unwrap(), weights);
    assert_eq!(std::fs::read(repo.get("config.json").await.unwrap()).unwrap(), b"{\"model_type\": \"bert\"}");
    assert_eq!(std::fs::read(repo.get("empty.txt").await.unwrap()).unwrap(), b"");

    // hub-client reads what hf-hub cached, offline.
    let offline = HubClient::builder().endpoint("http://127.0.0.1:9").cache_dir(&cache).offline(true).build().unwrap();
    assert_eq!(std::fs::read(offline.model("alice/candle").get("model.safetensors").await.unwrap()).unwrap(), weights);
}
