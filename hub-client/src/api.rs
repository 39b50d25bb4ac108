//! The client: endpoint, token, cache and HTTP settings, from the environment or a builder.

use crate::cache::{Cache, RepoCache};
use crate::error::{HubError, Result};
use crate::types::{RepoInfo, RepoType, TreeEntry, WhoAmI};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything but `A-Za-z0-9_.-~`, as huggingface_hub encodes revisions.
const REVISION: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~');
/// A file path keeps its slashes.
const FILE_PATH: &AsciiSet = &REVISION.remove(b'/');

pub fn encode_revision(rev: &str) -> String {
    utf8_percent_encode(rev, REVISION).to_string()
}

pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, FILE_PATH).to_string()
}

/// Progress callbacks for transfers (the CLI draws bars with them).
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes starts for `name`.
    fn start(&self, _name: &str, _total: u64) {}
    /// `n` more bytes moved.
    fn advance(&self, _n: u64) {}
    /// A file finished (or was already cached).
    fn finish(&self, _name: &str) {}
}

pub(crate) struct NoProgress;
impl Progress for NoProgress {}

pub(crate) struct Inner {
    pub endpoint: String,
    pub token: Option<String>,
    pub cache: Cache,
    pub offline: bool,
    /// Follows redirects (reqwest drops `Authorization` when the host changes).
    pub http: reqwest::Client,
    /// Follows only same-origin redirects: metadata is read from a cross-origin redirect itself.
    pub http_meta: reqwest::Client,
    pub max_parallel_files: usize,
    pub max_parallel_chunks: usize,
    pub chunk_size: u64,
    pub single_put_limit: u64,
    pub parallel_threshold: u64,
    pub progress: Arc<dyn Progress>,
    /// Transfer LFS-class files through Xet where the hub offers it.
    pub xet: bool,
    /// hf_xet's cache root: shards of earlier uploads, per CAS, live under it.
    pub xet_cache: PathBuf,
}

pub(crate) use crate::builder::{env, env_flag};
pub use crate::builder::{token_from_env, xet_disabled_by_env, HubClientBuilder};

/// A client of one hub. Cheap to clone.
#[derive(Clone)]
pub struct HubClient {
    pub(crate) inner: Arc<Inner>,
}

/// A repo at a revision.
#[derive(Clone)]
pub struct Repo {
    pub(crate) client: HubClient,
    pub repo_type: RepoType,
    pub id: String,
    pub revision: String,
}

impl HubClient {
    pub fn builder() -> HubClientBuilder {
        HubClientBuilder::default()
    }

    /// `HF_ENDPOINT`, `HF_TOKEN` (or the stored token), `HF_HUB_CACHE`/`HF_HOME`, `HF_HUB_OFFLINE`,
    /// `HF_HUB_DISABLE_XET`.
    pub fn from_env() -> Result<HubClient> {
        let mut b = HubClient::builder()
            .token(token_from_env())
            .offline(env_flag("HF_HUB_OFFLINE") || env_flag("TRANSFORMERS_OFFLINE"))
            .xet(!xet_disabled_by_env());
        if let Some(e) = env("HF_ENDPOINT") {
            b = b.endpoint(e);
        }
        b.build()
    }

    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    pub fn is_offline(&self) -> bool {
        self.inner.offline
    }

    pub fn xet_enabled(&self) -> bool {
        self.inner.xet
    }

    /// A model repo at `main`.
    pub fn model(&self, id: &str) -> Repo {
        self.repo(RepoType::Model, id, "main")
    }

    pub fn dataset(&self, id: &str) -> Repo {
        self.repo(RepoType::Dataset, id, "main")
    }

    pub fn repo(&self, repo_type: RepoType, id: &str, revision: &str) -> Repo {
        Repo { client: self.clone(), repo_type, id: id.to_string(), revision: revision.to_string() }
    }

    pub(crate) fn request(&self, method: Method, url: &str) -> Result<RequestBuilder> {
        if self.inner.offline {
            return Err(HubError::NotCached { what: url.to_string(), hint: "HF_HUB_OFFLINE is set; unset it to reach the hub".into() });
        }
        let mut req = self.inner.http.request(method, url);
        if let Some(t) = &self.inner.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        Ok(req)
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(&self, url: &str, ctx: &ErrorContext) -> Result<T> {
        let resp = check(self.request(Method::GET, url)?.send().await?, ctx).await?;
        resp.json().await.map_err(|e| HubError::InvalidResponse(format!("{url}: {e}")))
    }

    pub async fn whoami(&self) -> Result<WhoAmI> {
        let url = format!("{}/api/whoami-v2", self.inner.endpoint);
        self.get_json(&url, &ErrorContext::default()).await
    }

    /// Lists repos of a type: `search`, `author`, tag `filter`, `limit` (follows `Link` pages).
    pub async fn list(&self, repo_type: RepoType, query: &ListQuery) -> Result<Vec<RepoInfo>> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &query.search {
            params.push(("search", s.clone()));
        }
        if let Some(a) = &query.author {
            params.push(("author", a.clone()));
        }
        for f in &query.filter {
            params.push(("filter", f.clone()));
        }
        if let Some(s) = &query.sort {
            params.push(("sort", s.clone()));
        }
        if let Some(l) = query.limit {
            params.push(("limit", l.to_string()));
        }
        let mut url = reqwest::Url::parse_with_params(&format!("{}/api/{}", self.inner.endpoint, repo_type.plural()), &params)
            .map_err(|e| HubError::InvalidResponse(e.to_string()))?
            .to_string();
        let mut out = Vec::new();
        loop {
            let resp = check(self.request(Method::GET, &url)?.send().await?, &ErrorContext::default()).await?;
            let next = next_link(resp.headers());
            let page: Vec<RepoInfo> = resp.json().await.map_err(|e| HubError::InvalidResponse(e.to_string()))?;
            out.extend(page);
            match (next, query.limit) {
                (_, Some(l)) if out.len() >= l => {
                    out.truncate(l);
                    break;
                }
                (Some(n), _) => url = n,
                (None, _) => break,
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub search: Option<String>,
    pub author: Option<String>,
    pub filter: Vec<String>,
    pub sort: Option<String>,
    pub limit: Option<usize>,
}

/// The `rel="next"` URL of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        Some(part[start..end].to_string())
    })
}

/// What a request was about, to name it in errors.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorContext {
    pub repo: String,
    pub revision: String,
    pub path: String,
}

/// Turns a non-success answer into a typed error.
pub(crate) async fn check(resp: Response, ctx: &ErrorContext) -> Result<Response> {
    let status = resp.status();
    if status.is_success() || status.is_redirection() {
        return Ok(resp);
    }
    let code = resp.headers().get("x-error-code").and_then(|v| v.to_str().ok()).map(str::to_string);
    let url = resp.url().to_string();
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect());
    Err(match code.as_deref() {
        Some("RepoNotFound") | Some("GatedRepo") => HubError::RepoNotFound { repo: ctx.repo.clone() },
        Some("RevisionNotFound") => HubError::RevisionNotFound { repo: ctx.repo.clone(), revision: ctx.revision.clone() },
        Some("EntryNotFound") => HubError::EntryNotFound { repo: ctx.repo.clone(), revision: ctx.revision.clone(), path: ctx.path.clone() },
        _ => match status {
            StatusCode::UNAUTHORIZED => HubError::Unauthorized { message },
            StatusCode::FORBIDDEN => HubError::Forbidden { message },
            StatusCode::CONFLICT => HubError::Conflict { message },
            _ => HubError::Http { status: status.as_u16(), url, message },
        },
    })
}

impl Repo {
    pub fn at(&self, revision: &str) -> Repo {
        Repo { revision: revision.to_string(), ..self.clone() }
    }

    pub(crate) fn ctx(&self, path: &str) -> ErrorContext {
        ErrorContext { repo: self.id.clone(), revision: self.revision.clone(), path: path.to_string() }
    }

    pub(crate) fn api_url(&self) -> String {
        format!("{}/api/{}/{}", self.client.inner.endpoint, self.repo_type.plural(), self.id)
    }

    pub(crate) fn resolve_url(&self, revision: &str, path: &str) -> String {
        format!(
            "{}/{}{}/resolve/{}/{}",
            self.client.inner.endpoint,
            self.repo_type.url_prefix(),
            self.id,
            encode_revision(revision),
            encode_path(path)
        )
    }

    pub fn cache(&self) -> RepoCache {
        RepoCache { dir: self.client.inner.cache.repo_dir(self.repo_type, &self.id) }
    }

    /// Repo info at this revision, with file sizes and hashes.
    pub async fn info(&self) -> Result<RepoInfo> {
        let url = format!("{}/revision/{}?blobs=true", self.api_url(), encode_revision(&self.revision));
        self.client.get_json(&url, &self.ctx("")).await
    }

    /// Files and folders under `path` ("" = root).
    pub async fn tree(&self, path: &str, recursive: bool) -> Result<Vec<TreeEntry>> {
        let mut url = format!("{}/tree/{}", self.api_url(), encode_revision(&self.revision));
        if !path.is_empty() {
            url.push('/');
            url.push_str(&encode_path(path));
        }
        url.push_str(&format!("?recursive={recursive}"));
        let mut out = Vec::new();
        loop {
            let resp = check(self.client.request(Method::GET, &url)?.send().await?, &self.ctx(path)).await?;
            let next = next_link(resp.headers());
            let page: Vec<TreeEntry> = resp.json().await.map_err(|e| HubError::InvalidResponse(e.to_string()))?;
            out.extend(page);
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
    }

    pub async fn exists(&self) -> Result<bool> {
        match self.info().await {
            Ok(_) => Ok(true),
            Err(HubError::RepoNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
