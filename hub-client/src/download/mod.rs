//! Downloads into the shared cache: several files at once, large files in parallel ranges,
//! resumable, SHA-256 checked before a blob enters the cache, never a partial file under
//! `snapshots/`.

use crate::api::{check, Repo};
use crate::cache::{is_commit_hash, RepoCache};
use crate::error::{HubError, Result};
use crate::xet::XetFileData;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, RANGE};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

mod headers;
mod write;
use headers::{header, is_sha256, normalize_etag, xet_file_data};
use write::{globs, hash_into, verify, write_stream};
pub(crate) use write::{hash_in_order, open_partial};

/// What `/resolve` says about a file.
#[derive(Debug, Clone)]
pub struct FileMetadata {
    pub commit: String,
    /// Content SHA-256 for LFS files, git blob SHA-1 otherwise: the blob's name in the cache.
    pub etag: String,
    pub size: u64,
    /// Set when the hub serves this file through Xet.
    pub xet: Option<XetFileData>,
}

/// A path given to download: one that stays inside a snapshot, or a clear error.
fn check_path(path: &str) -> Result<()> {
    if crate::cache::is_safe_repo_path(path) {
        Ok(())
    } else {
        Err(HubError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{path:?} is not a path inside a repo"))))
    }
}

/// Files a model directory needs for `from_pretrained`, besides the weights.
const PRETRAINED_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "preprocessor_config.json",
    "chat_template.jinja",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

impl Repo {
    /// `HEAD /resolve`: the commit, ETag and size of a file (redirects followed only within the hub).
    pub async fn file_metadata(&self, path: &str) -> Result<FileMetadata> {
        check_path(path)?;
        let url = self.resolve_url(&self.revision, path);
        let mut req = self.client.inner.http_meta.head(&url).header("accept-encoding", "identity");
        if self.client.inner.offline {
            return Err(HubError::NotCached { what: path.into(), hint: "HF_HUB_OFFLINE is set".into() });
        }
        if let Some(t) = &self.client.inner.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let h = resp.headers().clone();
        if resp.status() == StatusCode::NOT_FOUND {
            if let (Some("EntryNotFound"), Some(commit)) = (header(&h, "x-error-code"), header(&h, "x-repo-commit")) {
                let _ = self.cache().mark_missing(commit, path);
            }
        }
        let resp = check(resp, &self.ctx(path)).await?;
        let commit = header(&h, "x-repo-commit")
            .map(str::to_string)
            .ok_or_else(|| HubError::InvalidResponse(format!("{url} has no X-Repo-Commit: is this a Hub endpoint?")))?;
        let etag = header(&h, "x-linked-etag")
            .or_else(|| header(&h, ETAG.as_str()))
            .map(normalize_etag)
            .ok_or_else(|| HubError::InvalidResponse(format!("{url} has no ETag")))?;
        let size = header(&h, "x-linked-size")
            .or_else(|| header(&h, CONTENT_LENGTH.as_str()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HubError::InvalidResponse(format!("{url} has no size")))?;
        drop(resp);
        // Both name files in the cache: a hub that sends anything else is refused.
        if !is_commit_hash(&commit) || !crate::cache::is_blob_id(&etag) {
            return Err(HubError::InvalidResponse(format!("{url}: X-Repo-Commit {commit:?} or ETag {etag:?} is not a hash")));
        }
        Ok(FileMetadata { commit, etag, size, xet: xet_file_data(&h) })
    }

    /// The cached path of `path` at this revision, without the network.
    pub fn cached(&self, path: &str) -> Option<PathBuf> {
        let cache = self.cache();
        let commit = cache.read_ref(&self.revision)?;
        let p = cache.snapshot_path(&commit, path);
        p.exists().then_some(p)
    }

    /// Downloads one file (or finds it in the cache) and returns its path under `snapshots/`.
    pub async fn get(&self, path: &str) -> Result<PathBuf> {
        check_path(path)?;
        let cache = self.cache();
        if is_commit_hash(&self.revision) {
            let p = cache.snapshot_path(&self.revision, path);
            if p.exists() {
                return Ok(p);
            }
        }
        if self.client.inner.offline {
            return self.cached(path).ok_or_else(|| HubError::NotCached {
                what: format!("{}/{path} at {}", self.id, self.revision),
                hint: "download it once without HF_HUB_OFFLINE".into(),
            });
        }
        let meta = match self.file_metadata(path).await {
            Ok(m) => m,
            // The hub is unreachable or failing: a cached copy stands in, as in huggingface_hub.
            Err(e) if e.is_transient() => return self.cached(path).ok_or(e),
            Err(e) => return Err(e),
        };
        cache.write_ref(&self.revision, &meta.commit)?;
        self.fetch(&cache, path, &meta).await
    }

    /// Ensures the blob for `meta` is cached and linked at `snapshots/<commit>/<path>`.
    pub(crate) async fn fetch(&self, cache: &RepoCache, path: &str, meta: &FileMetadata) -> Result<PathBuf> {
        // Every name below becomes a path in the cache: nothing the hub sends may lead outside it.
        if !is_commit_hash(&meta.commit) || !crate::cache::is_blob_id(&meta.etag) || !crate::cache::is_safe_repo_path(path) {
            return Err(HubError::InvalidResponse(format!(
                "refusing to cache {path:?} as blob {:?} of commit {:?}: not a safe path or not hashes",
                meta.etag, meta.commit
            )));
        }
        let progress = &self.client.inner.progress;
        let snapshot = cache.snapshot_path(&meta.commit, path);
        if snapshot.exists() {
            progress.finish(path);
            return Ok(snapshot);
        }
        let blob = cache.blob_path(&meta.etag);
        if !blob.metadata().is_ok_and(|m| m.len() == meta.size) {
            std::fs::create_dir_all(blob.parent().expect("blobs dir"))?;
            let partial = blob.with_file_name(format!("{}.incomplete", meta.etag));
            // Download by the commit, so every range comes from the same revision.
            let url = self.resolve_url(&meta.commit, path);
            progress.start(path, meta.size);
            let via_xet = match &meta.xet {
                Some(xet) if self.client.inner.xet && meta.size > 0 => self.download_xet(xet, &partial, meta.size, path).await?,
                _ => None,
            };
            let hashed = match via_xet {
                Some(hashed) => hashed,
                None if meta.size >= self.client.inner.parallel_threshold => self.download_ranges(&url, &partial, meta.size).await?,
                None => self.download_sequential(&url, &partial, meta.size, path).await?,
            };
            verify(&partial, path, meta, &hashed).await?;
            tokio::fs::rename(&partial, &blob).await?;
            let _ = tokio::fs::remove_file(partial.with_extension("incomplete.parts")).await;
        }
        progress.finish(path);
        Ok(cache.link(&meta.commit, path, &meta.etag)?)
    }

    /// One GET, resuming after whatever an earlier attempt left in `partial`; returns the SHA-256.
    async fn download_sequential(&self, url: &str, partial: &Path, size: u64, path: &str) -> Result<String> {
        let have = tokio::fs::metadata(partial).await.map(|m| m.len()).unwrap_or(0);
        let mut req = self.client.request(Method::GET, url)?;
        if have > 0 && have < size {
            req = req.header(RANGE, format!("bytes={have}-"));
            self.client.inner.progress.advance(have);
        }
        let resp = check(req.send().await?, &self.ctx(path)).await?;
        let resumed = resp.status() == StatusCode::PARTIAL_CONTENT;
        // Hash while writing: what an earlier attempt left first, then the new bytes.
        let mut hasher = Sha256::new();
        if resumed {
            let file = partial.to_path_buf();
            hasher = tokio::task::spawn_blocking(move || hash_into(&file, hasher))
                .await
                .map_err(|e| HubError::InvalidResponse(e.to_string()))??;
        }
        let mut file = tokio::fs::OpenOptions::new().create(true).write(true).truncate(!resumed).open(partial).await?;
        if resumed {
            file.seek(std::io::SeekFrom::Start(have)).await?;
        }
        write_stream(&mut file, resp, &*self.client.inner.progress, Some(&mut hasher)).await?;
        file.flush().await?;
        Ok(hex::encode(hasher.finalize()))
    }

    /// Parallel ranged GETs into one preallocated file. Finished ranges are recorded beside it,
    /// so an interrupted download resumes with the ranges still missing.
    /// Returns the SHA-256 of the whole file, hashed in order while later ranges still download.
    async fn download_ranges(&self, url: &str, partial: &Path, size: u64) -> Result<String> {
        let chunk = self.client.inner.chunk_size;
        let (parts_log, done, done_bytes) = write::open_partial(partial, size, chunk)?;
        let progress = self.client.inner.progress.clone();
        let count = size.div_ceil(chunk);
        progress.advance(done_bytes);
        let log =
            std::sync::Arc::new(tokio::sync::Mutex::new(tokio::fs::OpenOptions::new().create(true).append(true).open(&parts_log).await?));
        let finished = std::sync::Arc::new((std::sync::Mutex::new(done.clone()), tokio::sync::Notify::new()));
        let hasher = tokio::spawn(hash_in_order(partial.to_path_buf(), size, chunk, finished.clone()));
        let downloads = futures::stream::iter((0..count).filter(|i| !done.contains(i)))
            .map(|i| {
                let finished = finished.clone();
                let log = log.clone();
                let progress = progress.clone();
                async move {
                    let start = i * chunk;
                    let end = ((i + 1) * chunk).min(size) - 1;
                    let resp = check(
                        self.client.request(Method::GET, url)?.header(RANGE, format!("bytes={start}-{end}")).send().await?,
                        &self.ctx(""),
                    )
                    .await?;
                    let ok_range = resp.status() == StatusCode::PARTIAL_CONTENT
                        && header(resp.headers(), CONTENT_RANGE.as_str()).is_some_and(|r| r.starts_with(&format!("bytes {start}-{end}/")));
                    if !ok_range {
                        return Err(HubError::InvalidResponse(format!("{url} did not answer the range {start}-{end}")));
                    }
                    let mut file = tokio::fs::OpenOptions::new().write(true).open(partial).await?;
                    file.seek(std::io::SeekFrom::Start(start)).await?;
                    let written = write_stream(&mut file, resp, &*progress, None).await?;
                    file.flush().await?;
                    if written != end - start + 1 {
                        return Err(HubError::SizeMismatch { path: url.to_string(), expected: end - start + 1, actual: written });
                    }
                    log.lock().await.write_all(format!("{i}\n").as_bytes()).await?;
                    finished.0.lock().unwrap_or_else(|e| e.into_inner()).insert(i);
                    finished.1.notify_one();
                    Ok::<_, HubError>(())
                }
            })
            .buffer_unordered(self.client.inner.max_parallel_chunks)
            .try_collect::<()>()
            .await;
        if let Err(e) = downloads {
            hasher.abort();
            return Err(e);
        }
        hasher.await.map_err(|e| HubError::InvalidResponse(e.to_string()))?
    }

    /// Downloads the files of this revision (filtered by glob patterns) and returns the snapshot
    /// directory. File hashes come from the repo info, so no per-file metadata request is made.
    pub async fn snapshot(&self, allow: &[&str], ignore: &[&str]) -> Result<PathBuf> {
        let cache = self.cache();
        if self.client.inner.offline {
            let commit = cache.read_ref(&self.revision).ok_or_else(|| HubError::NotCached {
                what: format!("{} at {}", self.id, self.revision),
                hint: "download it once without HF_HUB_OFFLINE".into(),
            })?;
            let dir = cache.snapshot_dir(&commit);
            return if dir.exists() {
                Ok(dir)
            } else {
                Err(HubError::NotCached { what: format!("{} at {commit}", self.id), hint: "no snapshot".into() })
            };
        }
        let (info, commit) = self.snapshot_info().await?;
        let files = snapshot_files(info.siblings.unwrap_or_default(), allow, ignore)?;
        cache.write_ref(&self.revision, &commit)?;
        std::fs::create_dir_all(cache.snapshot_dir(&commit))?;
        let at_commit = self.at(&commit);
        // Xet hashes are in the tree listing (one request), as huggingface_hub's snapshot_download
        // finds them; without them the files come over plain HTTP, which works too.
        let missing_lfs =
            files.iter().any(|s| s.lfs.is_some() && s.xet_hash.is_none() && !cache.snapshot_path(&commit, &s.rfilename).exists());
        let xet_hashes: HashMap<String, String> = if self.client.inner.xet && missing_lfs {
            at_commit.tree("", true).await.map(|t| t.into_iter().filter_map(|e| Some((e.path, e.xet_hash?))).collect()).unwrap_or_default()
        } else {
            HashMap::new()
        };
        // Files with the same content share a blob: one download each, the others linked after,
        // so no two downloads write the same partial file.
        let mut groups: Vec<Vec<crate::types::Sibling>> = Vec::new();
        let mut by_blob: HashMap<String, usize> = HashMap::new();
        for s in files {
            let blob = s.lfs.as_ref().map(|l| l.sha256.clone()).or_else(|| s.blob_id.clone());
            match blob.as_ref().and_then(|b| by_blob.get(b)) {
                Some(&g) => groups[g].push(s),
                None => {
                    if let Some(b) = blob {
                        by_blob.insert(b, groups.len());
                    }
                    groups.push(vec![s]);
                }
            }
        }
        futures::stream::iter(groups)
            .map(|group| {
                let (repo, cache, commit, xet_hashes) = (&at_commit, &cache, &commit, &xet_hashes);
                async move {
                    for s in group {
                        let meta = match (&s.lfs, &s.blob_id, s.size) {
                            (Some(lfs), _, _) => {
                                // A listed Xet hash saves the HEAD: the token route is known (huggingface_hub does the same).
                                let listed = s.xet_hash.as_ref().or_else(|| xet_hashes.get(&s.rfilename));
                                let xet = listed.filter(|h| is_sha256(h)).map(|h| XetFileData {
                                    hash: h.to_ascii_lowercase(),
                                    refresh_url: format!("{}/xet-read-token/{commit}", repo.api_url()),
                                });
                                FileMetadata { commit: commit.clone(), etag: lfs.sha256.clone(), size: lfs.size, xet }
                            }
                            (None, Some(blob), Some(size)) => FileMetadata { commit: commit.clone(), etag: blob.clone(), size, xet: None },
                            _ => repo.file_metadata(&s.rfilename).await?,
                        };
                        repo.fetch(cache, &s.rfilename, &meta).await?;
                    }
                    Ok::<_, HubError>(())
                }
            })
            .buffer_unordered(self.client.inner.max_parallel_files)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(cache.snapshot_dir(&commit))
    }

    /// The repo's info for a snapshot and the commit it names, refused when the commit is not a
    /// hash or a listed file would land outside the snapshot directory (a hostile hub).
    async fn snapshot_info(&self) -> Result<(crate::types::RepoInfo, String)> {
        let info = self.info().await?;
        let commit = info.sha.clone().ok_or_else(|| HubError::InvalidResponse("repo info without sha".into()))?;
        if !is_commit_hash(&commit) {
            return Err(HubError::InvalidResponse(format!("repo info names commit {commit:?}, which is not a hash")));
        }
        if let Some(bad) = info.siblings.iter().flatten().find(|s| !crate::cache::is_safe_repo_path(&s.rfilename)) {
            return Err(HubError::InvalidResponse(format!(
                "the hub lists a file {:?} outside the repo; refusing the snapshot",
                bad.rfilename
            )));
        }
        Ok((info, commit))
    }

    /// What `from_pretrained` needs: config, tokenizer files and the safetensors weights
    /// (following `model.safetensors.index.json` to its shards). Returns the snapshot directory.
    pub async fn from_pretrained(&self) -> Result<PathBuf> {
        if self.client.inner.offline {
            return self.snapshot(&[], &[]).await;
        }
        let (info, commit) = self.snapshot_info().await?;
        let names: HashSet<String> = info.siblings.unwrap_or_default().into_iter().map(|s| s.rfilename).collect();
        let at = self.at(&commit);
        let mut wanted: Vec<String> = PRETRAINED_FILES.iter().filter(|f| names.contains(**f)).map(|f| f.to_string()).collect();
        if !names.contains("config.json") && !names.contains("model_index.json") {
            return Err(HubError::EntryNotFound { repo: self.id.clone(), revision: self.revision.clone(), path: "config.json".into() });
        }
        if names.contains("model.safetensors.index.json") {
            let index_path = at.get("model.safetensors.index.json").await?;
            let index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path)?)
                .map_err(|e| HubError::InvalidResponse(format!("model.safetensors.index.json: {e}")))?;
            let shards: HashSet<String> = index["weight_map"]
                .as_object()
                .map(|m| m.values().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            for shard in shards {
                if !names.contains(&shard) {
                    return Err(HubError::EntryNotFound { repo: self.id.clone(), revision: commit.clone(), path: shard });
                }
                wanted.push(shard);
            }
        } else if names.contains("model.safetensors") {
            wanted.push("model.safetensors".into());
        }
        let patterns: Vec<&str> = wanted.iter().map(String::as_str).collect();
        at.snapshot(&patterns, &[]).await?;
        self.cache().write_ref(&self.revision, &commit)?;
        Ok(self.cache().snapshot_dir(&commit))
    }
}

/// The files of `siblings` that [`Repo::snapshot`] with these patterns downloads (fnmatch-style
/// globs, as huggingface_hub's `allow_patterns`/`ignore_patterns`: `*` crosses `/`). Callers that
/// must know the size of a snapshot before fetching it sum these.
pub fn snapshot_files(siblings: Vec<crate::types::Sibling>, allow: &[&str], ignore: &[&str]) -> Result<Vec<crate::types::Sibling>> {
    let allow = globs(allow)?;
    let ignore = globs(ignore)?;
    Ok(siblings
        .into_iter()
        .filter(|s| allow.as_ref().is_none_or(|g| g.is_match(&s.rfilename)) && !ignore.as_ref().is_some_and(|g| g.is_match(&s.rfilename)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn xet_needs_both_the_hash_and_the_token_route() {
        let hash = "ab".repeat(32);
        let link = r#"<https://hub.example/api/models/a/b/xet-read-token/c0ffee>; rel="xet-auth", <https://hub.example/x?p=2>; rel="next""#;
        let got = xet_file_data(&headers(&[("x-xet-hash", &hash), ("link", link)])).unwrap();
        assert_eq!(got, XetFileData { hash: hash.clone(), refresh_url: "https://hub.example/api/models/a/b/xet-read-token/c0ffee".into() });
        // The route may come in its own header, and a Link may list other relations only.
        let route = headers(&[("x-xet-hash", &hash), ("link", "<https://h/n>; rel=\"next\""), ("x-xet-refresh-route", "https://h/r")]);
        assert_eq!(xet_file_data(&route).unwrap().refresh_url, "https://h/r");
        assert!(xet_file_data(&headers(&[("x-xet-hash", &hash)])).is_none(), "no token route: plain HTTP");
        assert!(xet_file_data(&headers(&[("link", link)])).is_none(), "no hash: plain HTTP");
        assert!(xet_file_data(&headers(&[("x-xet-hash", "abc"), ("link", link)])).is_none(), "not a hash");
    }
}
