//! Building a client: the endpoint, token and cache from huggingface_hub's environment
//! variables or set by hand, and the HTTP settings of transfers.

use crate::api::{HubClient, Inner, NoProgress, Progress};
use crate::cache::{hf_home, Cache};
use crate::error::Result;
use reqwest::header::{HeaderMap, HeaderValue, USER_AGENT};
use std::path::PathBuf;
use std::sync::Arc;

pub struct HubClientBuilder {
    endpoint: Option<String>,
    token: Option<String>,
    cache_dir: Option<PathBuf>,
    offline: Option<bool>,
    max_parallel_files: usize,
    max_parallel_chunks: usize,
    chunk_size: u64,
    single_put_limit: u64,
    parallel_threshold: u64,
    progress: Arc<dyn Progress>,
    xet: bool,
    xet_cache: Option<PathBuf>,
}

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(crate) fn env_flag(name: &str) -> bool {
    env(name).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// `HF_HUB_DISABLE_XET` is set: transfer without Xet, as huggingface_hub does.
pub fn xet_disabled_by_env() -> bool {
    env_flag("HF_HUB_DISABLE_XET")
}

/// The token huggingface_hub would use: `HF_TOKEN`, then `$HF_TOKEN_PATH` or `$HF_HOME/token`.
pub fn token_from_env() -> Option<String> {
    if let Some(t) = env("HF_TOKEN").or_else(|| env("HUGGING_FACE_HUB_TOKEN")) {
        return Some(t);
    }
    let path = env("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|| hf_home().join("token"));
    std::fs::read_to_string(path).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

impl Default for HubClientBuilder {
    fn default() -> Self {
        HubClientBuilder {
            endpoint: None,
            token: None,
            cache_dir: None,
            offline: None,
            max_parallel_files: 8,
            max_parallel_chunks: 8,
            chunk_size: 16 * 1024 * 1024,
            // S3 caps one PUT at 5 GB: larger objects go up in parts.
            single_put_limit: 5_000_000_000,
            parallel_threshold: 32 * 1024 * 1024,
            progress: Arc::new(NoProgress),
            xet: true,
            xet_cache: None,
        }
    }
}

impl HubClientBuilder {
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = Some(offline);
        self
    }
    /// Files downloaded at once by `snapshot`.
    pub fn max_parallel_files(mut self, n: usize) -> Self {
        self.max_parallel_files = n.max(1);
        self
    }
    /// Ranges of one large file downloaded (or parts uploaded) at once.
    pub fn max_parallel_chunks(mut self, n: usize) -> Self {
        self.max_parallel_chunks = n.max(1);
        self
    }
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = bytes.max(1024 * 1024);
        self
    }
    /// Objects larger than this are uploaded with the multipart transfer (parts in parallel)
    /// when the hub offers it; smaller ones in one streamed PUT, the fastest path.
    pub fn single_put_limit(mut self, bytes: u64) -> Self {
        self.single_put_limit = bytes;
        self
    }
    /// Files at least this large download in parallel ranges; smaller ones in one GET.
    pub fn parallel_threshold(mut self, bytes: u64) -> Self {
        self.parallel_threshold = bytes;
        self
    }
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }
    /// Upload and download LFS-class files through Xet when the hub offers it (the default, as
    /// in huggingface_hub); `false` keeps to LFS uploads and plain HTTP downloads.
    pub fn xet(mut self, enabled: bool) -> Self {
        self.xet = enabled;
        self
    }
    /// Where Xet's shard cache lives (default `$HF_XET_CACHE`, else `$HF_HOME/xet`, shared with
    /// huggingface_hub).
    pub fn xet_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.xet_cache = Some(dir.into());
        self
    }

    pub fn build(self) -> Result<HubClient> {
        let endpoint = self.endpoint.unwrap_or_else(|| "https://huggingface.co".into()).trim_end_matches('/').to_string();
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("hub-client/", env!("CARGO_PKG_VERSION"))));
        let base = || reqwest::Client::builder().default_headers(headers.clone()).connect_timeout(std::time::Duration::from_secs(30));
        let http = base().build()?;
        let http_meta = base()
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt.previous().last().is_some_and(|prev| {
                    prev.host_str() == attempt.url().host_str() && prev.port_or_known_default() == attempt.url().port_or_known_default()
                });
                if same_origin && attempt.previous().len() < 10 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()?;
        Ok(HubClient {
            inner: Arc::new(Inner {
                endpoint,
                token: self.token,
                cache: self.cache_dir.map(Cache::new).unwrap_or_else(Cache::from_env),
                offline: self.offline.unwrap_or(false),
                http,
                http_meta,
                max_parallel_files: self.max_parallel_files,
                max_parallel_chunks: self.max_parallel_chunks,
                chunk_size: self.chunk_size,
                single_put_limit: self.single_put_limit,
                parallel_threshold: self.parallel_threshold,
                progress: self.progress,
                xet: self.xet,
                xet_cache: self.xet_cache.unwrap_or_else(crate::xet::default_cache_root),
            }),
        })
    }
}
