//! Uploads the way huggingface_hub does without Xet: preupload → LFS batch (basic, or multipart
//! with parts in parallel) → one NDJSON commit.

use crate::api::{check, encode_revision, HubClient, Repo};
use crate::error::{HubError, Result};
use crate::types::{
    CommitResponse, CompletedPart, ErrorBody, LfsAction, LfsBatchRequest, LfsBatchResponse, LfsObjectSpec, LfsRef, LfsVerifyRequest,
    MultipartCompletion, NdjsonFile, NdjsonHeader, NdjsonLfsFile, NdjsonLine, NdjsonPath, PreuploadFile, PreuploadRequest,
    PreuploadResponse, RepoRequest, RepoType, RepoUrl, UploadMode,
};
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// A file to add: local path and its path in the repo.
#[derive(Debug, Clone)]
pub struct UploadFile {
    pub local: PathBuf,
    pub path_in_repo: String,
}

struct Prepared {
    file: UploadFile,
    size: u64,
    sample: Vec<u8>,
}

/// A file for the LFS transfer, named by its SHA-256.
struct LfsObject {
    file: UploadFile,
    size: u64,
    sha256: String,
}

/// What a commit did.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub commit: String,
    pub url: String,
    /// Paths `.gitignore` excluded.
    pub ignored: Vec<String>,
    /// What the Xet transfer moved; `None` when the large files went through LFS (or there
    /// were none).
    pub xet: Option<crate::xet::XetUploadStats>,
}

impl HubClient {
    /// Creates a repo; with `exist_ok` an existing one is fine. Returns its URL.
    pub async fn create_repo(&self, repo_type: RepoType, id: &str, private: bool, exist_ok: bool) -> Result<String> {
        let body = RepoRequest { private: Some(private), ..RepoRequest::for_id(repo_type, id) };
        let url = format!("{}/api/repos/create", self.inner.endpoint);
        let resp = self.request(Method::POST, &url)?.json(&body).send().await?;
        if resp.status() == reqwest::StatusCode::CONFLICT && exist_ok {
            // The 409 names the existing repo.
            let body: ErrorBody = resp.json().await.map_err(|e| HubError::InvalidResponse(e.to_string()))?;
            return Ok(body.url.unwrap_or_default());
        }
        let created: RepoUrl =
            check(resp, &Default::default()).await?.json().await.map_err(|e| HubError::InvalidResponse(e.to_string()))?;
        Ok(created.url)
    }

    pub async fn delete_repo(&self, repo_type: RepoType, id: &str) -> Result<()> {
        let url = format!("{}/api/repos/delete", self.inner.endpoint);
        let body = RepoRequest::for_id(repo_type, id);
        let ctx = crate::api::ErrorContext { repo: id.to_string(), ..Default::default() };
        check(self.request(Method::DELETE, &url)?.json(&body).send().await?, &ctx).await?;
        Ok(())
    }
}

/// Size and the first 512 bytes: all preupload needs.
async fn prepare(file: UploadFile) -> Result<Prepared> {
    use tokio::io::AsyncReadExt as _;
    let mut f = tokio::fs::File::open(&file.local).await?;
    let size = f.metadata().await?.len();
    let mut sample = Vec::with_capacity(512);
    (&mut f).take(512).read_to_end(&mut sample).await?;
    Ok(Prepared { file, size, sample })
}

/// The SHA-256 of a file (the LFS oid), read in a blocking thread.
async fn sha256_of(p: Prepared) -> Result<LfsObject> {
    let local = p.file.local.clone();
    let (size, sha256) = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
        use std::io::Read;
        let mut f = std::fs::File::open(&local)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 4 * 1024 * 1024];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok((size, hex::encode(h.finalize())));
            }
            h.update(&buf[..n]);
            size += n as u64;
        }
    })
    .await
    .map_err(|e| HubError::InvalidResponse(e.to_string()))??;
    Ok(LfsObject { file: p.file, size, sha256 })
}

/// Files under `dir` (skipping `.git/` and `.cache/huggingface/`), with repo paths under `prefix`.
pub fn collect_folder(dir: &Path, prefix: &str) -> Result<Vec<UploadFile>> {
    fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<UploadFile>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::result::Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if rel == ".git" || rel.starts_with(".git/") || rel == ".cache/huggingface" || rel.starts_with(".cache/huggingface/") {
                continue;
            }
            if e.file_type()?.is_dir() {
                walk(root, &path, prefix, out)?;
            } else {
                let in_repo = if prefix.is_empty() { rel } else { format!("{}/{rel}", prefix.trim_end_matches('/')) };
                out.push(UploadFile { local: path, path_in_repo: in_repo });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, prefix, &mut out)?;
    Ok(out)
}

impl Repo {
    fn lfs_batch_url(&self) -> String {
        format!("{}/{}{}.git/info/lfs/objects/batch", self.client.inner.endpoint, self.repo_type.url_prefix(), self.id)
    }

    /// Uploads a folder (honouring its top-level `.gitignore`) in one commit.
    pub async fn upload_folder(&self, dir: &Path, path_in_repo: &str, message: &str) -> Result<CommitInfo> {
        let files = collect_folder(dir, path_in_repo)?;
        let gitignore = std::fs::read_to_string(dir.join(".gitignore")).ok();
        self.upload_files(files, &[], message, gitignore).await
    }

    /// Adds `files` and deletes `delete` in one commit on this revision (a branch).
    pub async fn upload_files(
        &self,
        files: Vec<UploadFile>,
        delete: &[String],
        message: &str,
        gitignore: Option<String>,
    ) -> Result<CommitInfo> {
        let prepared: Vec<Prepared> = futures::stream::iter(files).map(prepare).buffer_unordered(4).try_collect().await?;
        // Preupload: which files go to LFS, which the repo's .gitignore excludes.
        let mut modes = std::collections::HashMap::new();
        for batch in prepared.chunks(256) {
            let req = PreuploadRequest {
                files: batch
                    .iter()
                    .map(|p| PreuploadFile {
                        path: p.file.path_in_repo.clone(),
                        sample: base64::engine::general_purpose::STANDARD.encode(&p.sample),
                        size: p.size,
                    })
                    .collect(),
                git_ignore: gitignore.clone(),
            };
            let url = format!("{}/preupload/{}", self.api_url(), encode_revision(&self.revision));
            let resp: PreuploadResponse =
                check(self.client.request(Method::POST, &url)?.json(&req).send().await?, &self.ctx("")).await?.json().await?;
            for d in resp.files {
                modes.insert(d.path.clone(), d);
            }
        }
        let mut ignored = Vec::new();
        let mut lfs = Vec::new();
        let mut regular = Vec::new();
        for p in prepared {
            match modes.get(&p.file.path_in_repo) {
                Some(d) if d.should_ignore => ignored.push(p.file.path_in_repo.clone()),
                Some(d) if d.upload_mode == UploadMode::Lfs && p.size > 0 => lfs.push(p),
                _ => regular.push(p),
            }
        }
        let (large, xet) = self.upload_large(lfs).await?;
        // The commit: inline regular files, pointers to the LFS objects, deletions.
        let mut lines = vec![NdjsonLine::Header(NdjsonHeader {
            summary: Some(message.to_string()),
            description: Some(String::new()),
            parent_commit: None,
        })];
        for p in &regular {
            let data = tokio::fs::read(&p.file.local).await?;
            lines.push(NdjsonLine::File(NdjsonFile {
                path: p.file.path_in_repo.clone(),
                content: base64::engine::general_purpose::STANDARD.encode(&data),
                encoding: Some("base64".into()),
            }));
        }
        for (path, sha256, size) in &large {
            lines.push(NdjsonLine::LfsFile(NdjsonLfsFile {
                path: path.clone(),
                oid: sha256.clone(),
                algo: Some("sha256".into()),
                size: Some(*size),
            }));
        }
        for d in delete {
            lines.push(NdjsonLine::DeletedFile(NdjsonPath { path: d.clone() }));
        }
        let mut body = Vec::new();
        for line in &lines {
            serde_json::to_writer(&mut body, line)?;
            body.push(b'\n');
        }
        let url = format!("{}/commit/{}", self.api_url(), encode_revision(&self.revision));
        let resp: CommitResponse = check(
            self.client.request(Method::POST, &url)?.header("content-type", "application/x-ndjson").body(body).send().await?,
            &self.ctx(""),
        )
        .await?
        .json()
        .await?;
        Ok(CommitInfo { commit: resp.commit_oid, url: resp.commit_url, ignored, xet })
    }

    /// Sends the LFS-class files: through Xet when enabled and the hub speaks it, else through
    /// the LFS batch API. Returns each file's (path, SHA-256, size) for the commit.
    async fn upload_large(&self, files: Vec<Prepared>) -> Result<(Vec<(String, String, u64)>, Option<crate::xet::XetUploadStats>)> {
        if files.is_empty() {
            return Ok((Vec::new(), None));
        }
        if self.client.inner.xet {
            let list: Vec<UploadFile> = files.iter().map(|p| p.file.clone()).collect();
            if let Some((done, stats)) = crate::xet::upload::upload(self, &list).await? {
                return Ok((done.into_iter().map(|f| (f.path_in_repo, f.sha256, f.size)).collect(), Some(stats)));
            }
        }
        let objects: Vec<LfsObject> = futures::stream::iter(files).map(sha256_of).buffer_unordered(4).try_collect().await?;
        self.upload_lfs(&objects).await?;
        Ok((objects.into_iter().map(|o| (o.file.path_in_repo, o.sha256, o.size)).collect(), None))
    }

    /// Deletes files in one commit.
    pub async fn delete_files(&self, paths: &[String], message: &str) -> Result<CommitInfo> {
        self.upload_files(Vec::new(), paths, message, None).await
    }

    async fn upload_lfs(&self, files: &[LfsObject]) -> Result<()> {
        for batch in files.chunks(100) {
            // One streamed PUT per object is the fastest path (the hub hashes while it writes);
            // multipart only where a single PUT may not go.
            let transfers = if batch.iter().any(|p| p.size > self.client.inner.single_put_limit) {
                vec!["basic".to_string(), "multipart".to_string()]
            } else {
                vec!["basic".to_string()]
            };
            let req = LfsBatchRequest {
                operation: "upload".into(),
                transfers,
                objects: batch.iter().map(|p| LfsObjectSpec { oid: p.sha256.clone(), size: p.size as i64 }).collect(),
                hash_algo: Some("sha256".into()),
                git_ref: Some(LfsRef { name: self.revision.clone() }),
            };
            let resp: LfsBatchResponse = check(
                self.client
                    .request(Method::POST, &self.lfs_batch_url())?
                    .header("accept", "application/vnd.git-lfs+json")
                    .header("content-type", "application/vnd.git-lfs+json")
                    .body(serde_json::to_vec(&req)?)
                    .send()
                    .await?,
                &self.ctx(""),
            )
            .await?
            .json()
            .await
            .map_err(|e| HubError::InvalidResponse(e.to_string()))?;
            // Several files at once; each large one also sends its parts in parallel.
            futures::stream::iter(resp.objects)
                .map(|obj| async move {
                    let oid = obj.oid;
                    if let Some(err) = obj.error {
                        return Err(HubError::InvalidResponse(format!("LFS upload of {oid} refused: {} {}", err.code, err.message)));
                    }
                    let Some(actions) = obj.actions else { return Ok(()) }; // already stored
                    let file =
                        batch.iter().find(|p| p.sha256 == oid).ok_or_else(|| HubError::InvalidResponse(format!("unknown oid {oid}")))?;
                    let upload = actions.upload.ok_or_else(|| HubError::InvalidResponse(format!("no upload action for {oid}")))?;
                    self.client.inner.progress.start(&file.file.path_in_repo, file.size);
                    match upload.chunk_size() {
                        Some(chunk) => self.upload_multipart(file, &upload, chunk).await?,
                        None => self.upload_basic(file, &upload).await?,
                    }
                    if let Some(verify) = actions.verify {
                        let body = LfsVerifyRequest { oid: oid.clone(), size: file.size };
                        check(self.client.request(Method::POST, &verify.href)?.json(&body).send().await?, &self.ctx("")).await?;
                    }
                    self.client.inner.progress.finish(&file.file.path_in_repo);
                    Ok(())
                })
                .buffer_unordered(self.client.inner.max_parallel_files.min(4))
                .try_collect::<()>()
                .await?;
        }
        Ok(())
    }

    async fn upload_basic(&self, file: &LfsObject, upload: &LfsAction) -> Result<()> {
        let href = &upload.href;
        let f = tokio::fs::File::open(&file.file.local).await?;
        let progress = self.client.inner.progress.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(f, 1024 * 1024).inspect_ok(move |b| progress.advance(b.len() as u64));
        // Upload URLs authenticate themselves: no hub headers.
        let resp =
            self.client.inner.http.put(href).header("content-length", file.size).body(reqwest::Body::wrap_stream(stream)).send().await?;
        check(resp, &self.ctx(&file.file.path_in_repo)).await?;
        Ok(())
    }

    async fn upload_multipart(&self, file: &LfsObject, upload: &LfsAction, chunk: u64) -> Result<()> {
        let header = upload.header.as_ref().ok_or_else(|| HubError::InvalidResponse("multipart action without header".into()))?;
        let mut parts: Vec<(u64, String)> = header.iter().filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v.clone()))).collect();
        parts.sort();
        if parts.len() as u64 != file.size.div_ceil(chunk) {
            return Err(HubError::InvalidResponse("multipart part count does not match the file size".into()));
        }
        let etags: Vec<(u64, String)> = futures::stream::iter(parts)
            .map(|(n, url)| async move {
                let start = (n - 1) * chunk;
                let len = chunk.min(file.size - start);
                let mut f = tokio::fs::File::open(&file.file.local).await?;
                f.seek(std::io::SeekFrom::Start(start)).await?;
                let progress = self.client.inner.progress.clone();
                let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 1024 * 1024)
                    .inspect_ok(move |b| progress.advance(b.len() as u64));
                let resp =
                    self.client.inner.http.put(&url).header("content-length", len).body(reqwest::Body::wrap_stream(stream)).send().await?;
                let resp = check(resp, &self.ctx(&file.file.path_in_repo)).await?;
                let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                Ok::<_, HubError>((n, etag))
            })
            .buffer_unordered(self.client.inner.max_parallel_chunks)
            .try_collect()
            .await?;
        let mut etags = etags;
        etags.sort();
        let completion = MultipartCompletion {
            oid: file.sha256.clone(),
            parts: etags.into_iter().map(|(part_number, etag)| CompletedPart { part_number, etag }).collect(),
        };
        let href = &upload.href;
        check(
            self.client
                .inner
                .http
                .post(href)
                .header("accept", "application/vnd.git-lfs+json")
                .header("content-type", "application/vnd.git-lfs+json")
                .body(serde_json::to_vec(&completion)?)
                .send()
                .await?,
            &self.ctx(&file.file.path_in_repo),
        )
        .await?;
        Ok(())
    }
}

impl From<serde_json::Error> for HubError {
    fn from(e: serde_json::Error) -> Self {
        HubError::InvalidResponse(e.to_string())
    }
}
