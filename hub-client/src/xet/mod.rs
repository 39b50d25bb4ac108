//! Xet, the content-addressed storage huggingface_hub 2.x uploads and downloads through
//! (wire spec: xet-protocol.md). Files are cut into content-defined chunks; new chunks travel
//! packed in xorbs, and a shard tells the CAS which xorb ranges make up each file. Chunks the CAS
//! already holds (known from this machine's shard cache or from the CAS's dedup answers) are
//! never sent again.

pub(crate) mod chunker;
pub(crate) mod dedup;
pub(crate) mod download;
pub(crate) mod shard;
pub(crate) mod upload;
pub(crate) mod xorb;

use crate::api::{check, ErrorContext, HubClient};
use crate::error::{HubError, Result};
use crate::xet_types::XetTokenInfo;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xet_core_structures::merklehash::{compute_data_hash, MerkleHash};

pub use upload::XetUploadStats;

/// The prefix hf_xet puts in xorb and chunk routes.
const PREFIX: &str = "default";
/// A token is renewed this long before it expires (hf_xet's `REFRESH_BUFFER_SEC`).
const TOKEN_REFRESH_MARGIN: u64 = 30;

/// Where a file's Xet content can be found, from the `HEAD /resolve` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XetFileData {
    /// The Xet file hash (`X-Xet-Hash`), 64 hex characters.
    pub hash: String,
    /// The hub route that hands out a CAS read token (`Link: <…>; rel="xet-auth"`).
    pub refresh_url: String,
}

/// What `hash_file` computes: the hashes hf_xet would give a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XetFileHash {
    /// The Xet file hash, in Xet's string form.
    pub xet_hash: String,
    /// The SHA-256, lowercase hex (the LFS oid).
    pub sha256: String,
    pub size: u64,
}

/// The Xet file hash and SHA-256 of a local file, as `hf_xet.hash_files` computes them.
pub fn hash_file(path: &Path) -> Result<XetFileHash> {
    let mut sink = |_: MerkleHash, _: bytes::Bytes| true;
    let summary = upload::chunk_file(path, &mut sink)?;
    Ok(XetFileHash { xet_hash: summary.file_hash.hex(), sha256: hex::encode(summary.sha256), size: summary.size })
}

#[cfg(test)]
pub(crate) fn hash_file_bytes_for_tests(data: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("f");
    std::fs::write(&path, data).expect("write");
    hash_file(&path).expect("hash").xet_hash
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `$HF_XET_CACHE`, or `$HF_HOME/xet`: the root hf_xet keeps its caches under.
pub fn default_cache_root() -> PathBuf {
    std::env::var_os("HF_XET_CACHE").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| crate::cache::hf_home().join("xet"))
}

/// The shard cache of one CAS, named as hf_xet names it (`{first 16 chars}-{hash}`), so that
/// hub-client and huggingface_hub dedup against each other's uploads.
pub(crate) fn shard_cache_dir(root: &Path, cas_url: &str) -> PathBuf {
    let prefix: String = cas_url.chars().take(16).map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    let hash = compute_data_hash(cas_url.as_bytes()).base64();
    root.join(format!("{prefix}-{}", &hash[..16])).join("shard-cache")
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A CAS access token from a hub token route, renewed before it expires.
pub(crate) struct TokenSource {
    client: HubClient,
    url: String,
    ctx: ErrorContext,
    current: tokio::sync::Mutex<XetTokenInfo>,
}

impl TokenSource {
    /// Asks the hub for a first token. `None`: the hub has no such route (no Xet there).
    pub async fn open(client: &HubClient, url: String, ctx: ErrorContext) -> Result<Option<TokenSource>> {
        match fetch_token(client, &url, &ctx).await? {
            Some(token) => Ok(Some(TokenSource { client: client.clone(), url, ctx, current: tokio::sync::Mutex::new(token) })),
            None => Ok(None),
        }
    }

    /// A token valid for at least the next 30 s.
    pub async fn get(&self) -> Result<XetTokenInfo> {
        let mut current = self.current.lock().await;
        if current.exp <= unix_now() + TOKEN_REFRESH_MARGIN {
            *current = fetch_token(&self.client, &self.url, &self.ctx).await?.ok_or_else(|| {
                HubError::InvalidResponse(format!(
                    "{} stopped answering while a Xet transfer was under way; retry, or set HF_HUB_DISABLE_XET=1",
                    self.url
                ))
            })?;
        }
        Ok(current.clone())
    }
}

/// `GET` a token route: the JSON body (hf_xet reads it), or the `X-Xet-*` headers
/// (huggingface_hub reads those). 404/501 mean the hub does not speak Xet.
async fn fetch_token(client: &HubClient, url: &str, ctx: &ErrorContext) -> Result<Option<XetTokenInfo>> {
    let resp = client.request(Method::GET, url)?.send().await?;
    if matches!(resp.status(), StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED) {
        return Ok(None);
    }
    let resp = check(resp, ctx).await?;
    let h = resp.headers().clone();
    let from_headers =
        match (header_str(&h, "x-xet-cas-url"), header_str(&h, "x-xet-access-token"), header_str(&h, "x-xet-token-expiration")) {
            (Some(cas), Some(token), Some(exp)) => {
                exp.parse().ok().map(|exp| XetTokenInfo { access_token: token.into(), exp, cas_url: cas.into() })
            }
            _ => None,
        };
    let body = resp.bytes().await?;
    let token = serde_json::from_slice::<XetTokenInfo>(&body).ok().or(from_headers).ok_or_else(|| {
        HubError::InvalidResponse(format!("{url} answered without a Xet token (neither a JSON body nor X-Xet-* headers)"))
    })?;
    Ok(Some(XetTokenInfo { cas_url: token.cas_url.trim_end_matches('/').to_string(), ..token }))
}

/// Requests to one CAS with the tokens of one source.
pub(crate) struct Cas {
    pub client: HubClient,
    pub tokens: TokenSource,
}

impl Cas {
    /// The CAS base URL (fixed for the life of a token source).
    pub async fn base_url(&self) -> Result<String> {
        Ok(self.tokens.get().await?.cas_url)
    }

    /// A request to `{casUrl}{path}` with the current Bearer token.
    pub async fn request(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let token = self.tokens.get().await?;
        Ok(self
            .client
            .inner
            .http
            .request(method, format!("{}{path}", token.cas_url))
            .header(AUTHORIZATION, format!("Bearer {}", token.access_token)))
    }

    /// Sends, retrying network failures and 5xx/408/429 answers a few times, as hf_xet does.
    pub async fn send(&self, method: Method, path: &str, body: Option<bytes::Bytes>, range: Option<String>) -> Result<Response> {
        send_with_retry(|| async {
            let mut req = self.request(method.clone(), path).await?;
            if let Some(r) = &range {
                req = req.header(reqwest::header::RANGE, r);
            }
            if let Some(b) = &body {
                req = req.header(reqwest::header::CONTENT_LENGTH, b.len()).body(b.clone());
            }
            Ok(req.send().await?)
        })
        .await
    }
}

/// Runs `attempt` until it gives an answer that is not worth retrying (3 tries, backing off).
pub(crate) async fn send_with_retry<F, Fut>(mut attempt: F) -> Result<Response>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Response>>,
{
    let mut delay = Duration::from_millis(300);
    for _ in 0..2 {
        match attempt().await {
            Ok(resp) if !is_retryable_status(resp.status()) => return Ok(resp),
            Err(e) if !e.is_transient() => return Err(e),
            _ => {
                tokio::time::sleep(delay).await;
                delay *= 3;
            }
        }
    }
    attempt().await
}

fn is_retryable_status(s: StatusCode) -> bool {
    s.is_server_error() && s != StatusCode::NOT_IMPLEMENTED || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT
}

/// An error for a CAS answer that broke the protocol.
pub(crate) fn protocol_error(what: impl std::fmt::Display) -> HubError {
    HubError::InvalidResponse(format!("Xet: {what} (set HF_HUB_DISABLE_XET=1 to transfer without Xet)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_cache_is_named_as_hf_xet_names_it() {
        let dir = shard_cache_dir(Path::new("/c"), "http://127.0.0.1:8080/xet");
        let hash = compute_data_hash(b"http://127.0.0.1:8080/xet").base64();
        assert_eq!(dir, Path::new("/c").join(format!("http___127_0_0_1-{}", &hash[..16])).join("shard-cache"));
    }
}
