//! What every fuzz target shares: one real hub per process (the real router over a fresh SQLite
//! file and local storage in a temporary directory, no mocks), requests sent in-process, and the
//! checks that turn a bad answer into a crash libFuzzer records:
//!
//! - a panic or abort anywhere in the hub (libfuzzer-sys aborts on any panic, spawned tasks too);
//! - a 5xx answer: every input here is the client's doing, so the answer must be a 4xx at worst;
//! - a hang: an answer (body included) that takes longer than [`TIMEOUT`];
//! - an API refusal outside the Hub's error protocol: a 4xx without `X-Error-Code`, or without
//!   a JSON body holding an `error` string (HEAD: no body);
//! - whatever a target asserts on top (a refused commit moved nothing, served bytes are the
//!   stored bytes, …).
#![allow(clippy::unwrap_used)]

pub mod xet;

use axum::body::Body;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use hub_server::db::Role;
use hub_server::{accounts, routes, AppState, Settings};
use serde_json::{json, Value};
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;

/// Longest an answer may take, body included (the slowest honest request here takes milliseconds).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The origin oneshot requests claim (the hub builds absolute URLs from the Host header).
pub const ORIGIN: &str = "http://hub.test";

/// One request, kept whole so a failure can print exactly what was sent.
#[derive(Clone)]
pub struct Call {
    pub method: Method,
    pub uri: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

impl Call {
    pub fn new(method: Method, uri: impl Into<String>) -> Call {
        Call { method, uri: uri.into(), headers: Vec::new(), body: Vec::new() }
    }
    pub fn get(uri: impl Into<String>) -> Call {
        Call::new(Method::GET, uri)
    }
    pub fn post(uri: impl Into<String>, body: impl Into<Vec<u8>>) -> Call {
        Call::new(Method::POST, uri).body(body)
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Call {
        self.body = body.into();
        self
    }
    pub fn bearer(self, token: &str) -> Call {
        self.header("authorization", &format!("Bearer {token}"))
    }
    /// Adds a header; one whose value could not travel over HTTP is left off.
    pub fn header(mut self, name: &'static str, value: &str) -> Call {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }
}

/// How the hub answers refusals on a path: the JSON error protocol, or (the web UI, and paths
/// that route nowhere outside `/api`) an HTML page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Speaks {
    /// `/api/…` and the CAS under `/xet/…`: always the error protocol.
    Api,
    /// A repo's `resolve/{rev}/{file}` and Git LFS URLs: the error protocol once routed there; a
    /// malformed one (an empty file name) routes nowhere and gets the site's 404 page.
    RepoApi,
    Web,
}

fn speaks(path: &str) -> Speaks {
    // Unrouted paths reach a fallback that reads `/api` after any leading slashes.
    if path.starts_with("/xet/") || path.trim_start_matches('/').starts_with("api/") {
        return Speaks::Api;
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let rest = match segs.first() {
        Some(&"datasets" | &"spaces") => &segs[1..],
        _ => &segs[..],
    };
    if matches!(rest, [_, _, "resolve", ..] | [_, _, "info", "lfs", ..]) {
        Speaks::RepoApi
    } else {
        Speaks::Web
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.method, self.uri)?;
        for (k, v) in &self.headers {
            let v = if k == "authorization" { "Bearer <token>".to_string() } else { format!("{v:?}") };
            writeln!(f, "{k}: {v}")?;
        }
        if !self.body.is_empty() {
            write!(f, "\n{} ({} bytes)", shown(&self.body), self.body.len())?;
        }
        Ok(())
    }
}

/// Bytes as escaped text, cut at 4 KiB.
pub fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(4096)];
    let mut s = cut.escape_ascii().to_string();
    if cut.len() < bytes.len() {
        s.push('…');
    }
    s
}

pub struct Reply {
    /// How the path (as the hub read it) answers refusals.
    pub speaks: Speaks,
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        for name in ["x-error-code", "content-type", "content-range", "content-length", "location"] {
            if let Some(v) = self.header(name) {
                write!(f, "\n{name}: {v}")?;
            }
        }
        write!(f, "\n{}", shown(&self.body))
    }
}

/// Fails the input: the message names the request and the answer, then libFuzzer saves the input.
#[track_caller]
pub fn fail(why: &str, call: &Call, reply: Option<&Reply>) -> ! {
    match reply {
        Some(r) => panic!("{why}\n--- request\n{call}\n--- answer\n{r}"),
        None => panic!("{why}\n--- request\n{call}"),
    }
}

/// Known content of the fixture repo `alice/fuzz`, for targets that check what comes back.
pub struct Fixture {
    /// `small.txt`, stored inline in git.
    pub small: Vec<u8>,
    /// `lfs.bin`, uploaded through the LFS batch API.
    pub lfs: Vec<u8>,
    pub lfs_oid: String,
    /// `xet.bin`, uploaded through Xet: xorb A then xorb B, all of their chunks.
    pub xet: Vec<u8>,
    pub xet_sha256: String,
    pub xet_hash: String,
    pub xorb_a: xet::Xorb,
    pub xorb_b: xet::Xorb,
    /// A signed xorb-range URL (path and query) for all of xorb A, from a reconstruction.
    pub xorb_a_range_url: String,
}

/// The hub of this process, with its accounts, tokens and fixture repos.
pub struct Hub {
    rt: tokio::runtime::Runtime,
    pub state: AppState,
    router: axum::Router,
    /// Owner of every fixture repo (write token, read-only token).
    pub alice: String,
    pub alice_read: String,
    /// A user with no rights on alice's repos.
    pub bob: String,
    /// Xet tokens for `alice/fuzz`.
    pub xet_write: String,
    pub xet_read: String,
    pub fixture: Fixture,
}

/// Repos the setup creates (all alice's); targets that write use their own.
pub const REPO: &str = "alice/fuzz";
pub const PRIVATE_REPO: &str = "alice/secret";

static HUB: OnceLock<Hub> = OnceLock::new();

/// The hub, built on first use (about a second: migrations, repos, uploads).
pub fn hub() -> &'static Hub {
    HUB.get_or_init(Hub::start)
}

/// The production defaults (as `hub-server serve` would run with no flags), over `dir`: parsed
/// through the same clap definitions, so settings added later need nothing here.
fn settings(dir: &std::path::Path) -> Settings {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        settings: Settings,
    }
    let dir = dir.to_str().expect("a UTF-8 temporary directory");
    let args = [
        "hub-fuzz",
        "--data-dir",
        dir,
        "--secret",
        "fuzz-secret-fuzz-secret-fuzz-secret",
        // The longest allowed: the Xet tokens minted at setup outlive long runs.
        "--xet-token-ttl",
        "86400",
    ];
    <Flags as clap::Parser>::try_parse_from(args).unwrap_or_else(|e| panic!("settings: {e}")).settings
}

impl Hub {
    fn start() -> Hub {
        // Internal errors are logged where they happen: show them next to the failing input.
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        // Under TMPDIR, which scripts/fuzz points at a directory it removes afterwards (this one
        // is never dropped: the hub lives as long as the process).
        let dir = tempfile_dir();
        let (state, alice, alice_read, bob) = rt.block_on(async {
            let state = AppState::open(settings(&dir)).await.unwrap();
            accounts::create_user(&state, "alice", Some("alice@example.org"), None).await.unwrap();
            accounts::create_user(&state, "bob", None, None).await.unwrap();
            let alice = accounts::create_token(&state, "alice", "write", Role::Write).await.unwrap();
            let alice_read = accounts::create_token(&state, "alice", "read", Role::Read).await.unwrap();
            let bob = accounts::create_token(&state, "bob", "write", Role::Write).await.unwrap();
            (state, alice, alice_read, bob)
        });
        let router = routes::router(state.clone());
        let mut hub = Hub {
            rt,
            state,
            router,
            alice,
            alice_read,
            bob,
            xet_write: String::new(),
            xet_read: String::new(),
            fixture: Fixture {
                small: Vec::new(),
                lfs: Vec::new(),
                lfs_oid: String::new(),
                xet: Vec::new(),
                xet_sha256: String::new(),
                xet_hash: String::new(),
                xorb_a: xet::Xorb::new(Vec::new()),
                xorb_b: xet::Xorb::new(Vec::new()),
                xorb_a_range_url: String::new(),
            },
        };
        hub.populate();
        hub
    }

    /// Sends a request and waits for the whole answer; a hang or a body that breaks midway fails
    /// the input. None when the request could not be sent over HTTP at all (a URI or header that
    /// no HTTP server would receive).
    pub fn try_send(&self, call: &Call) -> Option<Reply> {
        // As a server reads an origin-form request target: `//x/y` is a path, not an authority.
        let path: PathAndQuery = call.uri.parse().ok()?;
        let speaks = speaks(path.path());
        let uri = Uri::from_parts({
            let mut p = axum::http::uri::Parts::default();
            p.path_and_query = Some(path);
            p
        })
        .ok()?;
        let mut req = Request::builder().method(call.method.clone()).uri(uri).header("host", "hub.test");
        for (k, v) in &call.headers {
            req = req.header(k, v);
        }
        let req = req.body(Body::from(call.body.clone())).ok()?;
        let router = self.router.clone();
        let started = std::time::Instant::now();
        let answer = self.rt.block_on(async move {
            tokio::time::timeout(TIMEOUT, async move {
                let resp = router.oneshot(req).await.unwrap_or_else(|e| match e {});
                let (parts, body) = resp.into_parts();
                body.collect().await.map(|b| Reply { speaks, status: parts.status, headers: parts.headers, body: b.to_bytes() })
            })
            .await
        });
        match answer {
            Err(_) => fail(&format!("hang: no whole answer within {TIMEOUT:?}"), call, None),
            Ok(Err(e)) => fail(&format!("the answer's body broke off: {e}"), call, None),
            // Work that never yields (CPU in a handler) finishes past the timer unseen by it.
            Ok(Ok(_)) if started.elapsed() > TIMEOUT => fail(&format!("hang: the answer took {:?}", started.elapsed()), call, None),
            Ok(Ok(reply)) => Some(reply),
        }
    }

    /// `try_send` for requests the harness builds itself (always sendable).
    pub fn send(&self, call: &Call) -> Reply {
        self.try_send(call).unwrap_or_else(|| fail("the harness built a request that cannot be sent", call, None))
    }

    /// The commit `main` of a repo points at.
    pub fn head(&self, repo: &str) -> String {
        let call = Call::get(format!("/api/models/{repo}/revision/main")).bearer(&self.alice);
        let r = self.send(&call);
        match r.json().and_then(|v| v["sha"].as_str().map(str::to_string)) {
            Some(sha) if r.status == StatusCode::OK => sha,
            _ => fail("could not read the head of main", &call, Some(&r)),
        }
    }

    /// Creates `alice/{name}` (public or private).
    pub fn create_repo(&self, name: &str, private: bool) -> String {
        let call = Call::post("/api/repos/create", json!({"name": name, "organization": "alice", "private": private}).to_string())
            .bearer(&self.alice);
        let r = self.send(&call);
        if r.status != StatusCode::OK {
            fail("setup: could not create a repo", &call, Some(&r));
        }
        format!("alice/{name}")
    }

    /// Commits NDJSON `lines` to `main` of `repo` as alice; the setup's commits must land.
    pub fn commit(&self, repo: &str, lines: &[Value]) -> Reply {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        self.send(&Call::post(format!("/api/models/{repo}/commit/main"), body).bearer(&self.alice))
    }

    fn must(&self, call: Call) -> Reply {
        let r = self.send(&call);
        if r.status != StatusCode::OK {
            fail("setup: the hub refused a valid request", &call, Some(&r));
        }
        r
    }

    /// The fixture: `alice/fuzz` with an inline file, an empty file, a card, an LFS file and a
    /// Xet file; `alice/secret`, private. Deterministic, so seeds can name its content.
    fn populate(&mut self) {
        self.create_repo("fuzz", false);
        self.create_repo("secret", true);
        let small: Vec<u8> = (0..1000u32).map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[i as usize % 27]).collect();
        let readme = "---\nlicense: mit\ntags:\n- fuzz\npipeline_tag: text-classification\n---\n# Fuzz\n";
        let r = self.commit(
            REPO,
            &[
                header_line("fixture"),
                file_line("small.txt", &small),
                file_line("empty.txt", b""),
                file_line("README.md", readme.as_bytes()),
                file_line("dir/nested/deep.txt", b"deep"),
            ],
        );
        assert_eq!(r.status, StatusCode::OK, "setup commit: {r}");

        // An LFS object: batch, PUT to the signed URL, commit its pointer.
        let lfs = xet::data(1, 3000);
        let lfs_oid = sha256_hex(&lfs);
        let batch = json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": lfs_oid, "size": lfs.len()}]});
        let r = self.must(Call::post(format!("/{REPO}.git/info/lfs/objects/batch"), batch.to_string()).bearer(&self.alice));
        let href = r.json().unwrap()["objects"][0]["actions"]["upload"]["href"].as_str().unwrap().to_string();
        self.must(Call::new(Method::PUT, href.trim_start_matches(ORIGIN)).body(lfs.clone()));
        let lfs_line = json!({"key": "lfsFile", "value": {"path": "lfs.bin", "algo": "sha256", "oid": lfs_oid, "size": lfs.len()}});
        let r = self.commit(REPO, &[header_line("lfs"), lfs_line]);
        assert_eq!(r.status, StatusCode::OK, "setup LFS commit: {r}");

        // A Xet file of two xorbs: upload them, register a shard, commit its pointer.
        self.xet_write = self.xet_token(REPO, "write");
        self.xet_read = self.xet_token(REPO, "read");
        let (a, b) = xet::fixture_xorbs();
        for x in [&a, &b] {
            self.must(Call::post(format!("/xet/v1/xorbs/default/{}", x.hex()), x.body.clone()).bearer(&self.xet_write));
        }
        let file = xet::FileSpec::whole(&[&a, &b]);
        let shard = xet::shard(std::slice::from_ref(&file), &[&a, &b]);
        self.must(Call::post("/xet/v1/shards", shard).bearer(&self.xet_write));
        let content = file.bytes();
        let sha = sha256_hex(&content);
        let line = json!({"key": "lfsFile", "value": {"path": "xet.bin", "algo": "sha256", "oid": sha, "size": content.len()}});
        let r = self.commit(REPO, &[header_line("xet"), line]);
        assert_eq!(r.status, StatusCode::OK, "setup Xet commit: {r}");

        let xet_hash = file.hash().hex();
        let r = self.must(Call::get(format!("/xet/v1/reconstructions/{xet_hash}")).bearer(&self.xet_read));
        let v = r.json().unwrap();
        let url = v["fetch_info"][a.hex()][0]["url"].as_str().unwrap().trim_start_matches(ORIGIN).to_string();
        self.fixture =
            Fixture { small, lfs, lfs_oid, xet: content, xet_sha256: sha, xet_hash, xorb_a: a, xorb_b: b, xorb_a_range_url: url };
    }

    /// A Xet token (`kind`: read or write) for `repo`, asked for as alice.
    pub fn xet_token(&self, repo: &str, kind: &str) -> String {
        let r = self.must(Call::get(format!("/api/models/{repo}/xet-{kind}-token/main")).bearer(&self.alice));
        r.json().and_then(|v| v["accessToken"].as_str().map(str::to_string)).expect("a token in the answer")
    }

    /// Follows a v1 reconstruction answer the way hf_xet does: fetches each signed xorb range,
    /// unpacks the chunks each term names and joins them, skipping `offset_into_first_range`.
    /// Err says what did not add up.
    pub fn follow_reconstruction(&self, v: &Value) -> Result<Vec<u8>, String> {
        let r: hub_client::xet_types::ReconstructionV1 =
            serde_json::from_value(v.clone()).map_err(|e| format!("not a v1 reconstruction: {e}"))?;
        let mut out = Vec::new();
        for t in &r.terms {
            let fetches = r.fetch_info.get(&t.hash).ok_or(format!("no fetch for xorb {}", t.hash))?;
            let f = fetches
                .iter()
                .find(|f| f.range.start <= t.range.start && t.range.end <= f.range.end)
                .ok_or(format!("no fetch of xorb {} holds chunks {:?}", t.hash, t.range))?;
            let call = Call::get(f.url.trim_start_matches(ORIGIN));
            let reply = self.send(&call);
            check(&call, &reply);
            if reply.status != StatusCode::PARTIAL_CONTENT {
                return Err(format!("a signed xorb range answered {}", reply.status));
            }
            if reply.body.len() as u64 != f.url_range.end - f.url_range.start + 1 {
                return Err(format!("a signed xorb range sent {} bytes for {:?}", reply.body.len(), f.url_range));
            }
            let chunks = xet::unpack_chunks(&reply.body).map_err(|e| format!("xorb {} range: {e}", t.hash))?;
            let (a, b) = ((t.range.start - f.range.start) as usize, (t.range.end - f.range.start) as usize);
            let picked = chunks.get(a..b).ok_or(format!("fetched {} chunks, term wants {a}..{b}", chunks.len()))?;
            let term: Vec<u8> = picked.concat();
            if term.len() != t.unpacked_length as usize {
                return Err(format!("term of xorb {} unpacks to {} bytes, not {}", t.hash, term.len(), t.unpacked_length));
            }
            out.extend_from_slice(&term);
        }
        let skip = (r.offset_into_first_range as usize).min(out.len());
        Ok(out.split_off(skip))
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let base = std::env::temp_dir();
    for n in 0u32.. {
        let dir = base.join(format!("hub-fuzz-{}-{n}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() {
            return dir;
        }
    }
    unreachable!()
}

/// The checks every answer must pass (see the module comment).
pub fn check(call: &Call, reply: &Reply) {
    if reply.status.is_server_error() {
        fail("server error: input that is the client's doing must get a 4xx, not a 5xx", call, Some(reply));
    }
    let page = reply.header("content-type").is_some_and(|t| t.starts_with("text/html"));
    let api = match reply.speaks {
        Speaks::Api => true,
        Speaks::RepoApi => !page,
        Speaks::Web => false,
    };
    if reply.status.is_client_error() && api {
        if reply.header("x-error-code").is_none_or(str::is_empty) {
            fail("an API refusal without an X-Error-Code header", call, Some(reply));
        }
        if call.method != Method::HEAD {
            let ok = reply.json().is_some_and(|v| v.get("error").is_some_and(Value::is_string));
            if !ok {
                fail("an API refusal whose body is not JSON with an \"error\" string", call, Some(reply));
            }
        }
    }
}

pub fn header_line(summary: &str) -> Value {
    json!({"key": "header", "value": {"summary": summary, "description": ""}})
}

pub fn file_line(path: &str, content: &[u8]) -> Value {
    use base64::Engine;
    json!({"key": "file", "value": {"path": path, "content": base64::engine::general_purpose::STANDARD.encode(content), "encoding": "base64"}})
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Percent-encodes every byte outside RFC 3986's unreserved set, so any bytes reach the hub's
/// decoder through a valid URI.
pub fn encode_segment(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Writes the seeds a target derives from the fixture (binary Xet bodies) into `dir`, when
/// `HUB_FUZZ_WRITE_SEEDS` names one: `HUB_FUZZ_WRITE_SEEDS=fuzz/seeds/xet_shard <binary>`.
pub fn write_seeds(seeds: &[(&str, Vec<u8>)]) {
    let Ok(dir) = std::env::var("HUB_FUZZ_WRITE_SEEDS") else { return };
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds {
        std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
    }
    eprintln!("wrote {} seeds into {dir}", seeds.len());
    std::process::exit(0);
}

/// Reads a structured input byte by byte; past the end everything reads as zero, so every input
/// decodes to something and seeds are easy to write by hand.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Up to `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
