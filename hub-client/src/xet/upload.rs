//! Uploads through Xet, as hf_xet does: write token → chunk and hash each file while reading it
//! → dedup against the local shard cache and the CAS's global-dedup answers → new chunks packed
//! into xorbs, several uploaded at once → one shard registering the files → the commit (by the
//! caller) names each file by the SHA-256 computed on the way.

use super::dedup::{DedupIndex, XorbId};
use super::shard::{self, FileRecord, FileTerm, ShardCache};
use super::xorb::XorbBuilder;
use super::{protocol_error, Cas, TokenSource, PREFIX};
use crate::api::{check, encode_revision, Repo};
use crate::error::{HubError, Result};
use crate::upload::UploadFile;
use crate::xet_types::{ShardUploadResponse, XorbUploadResponse};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use tokio::task::JoinSet;
use xet_core_structures::merklehash::{compute_data_hash, file_hash, MerkleHash};
use xet_core_structures::metadata_shard::chunk_verification::range_hash_from_chunks;
use xet_core_structures::metadata_shard::xorb_structs::MDBXorbInfo;

/// The first chunk of a file, and chunks whose hash is 0 mod 1024, are looked up in the CAS's
/// global-dedup index; at most one query per this many chunks (hf_xet's spacing, ~16 MB).
const GLOBAL_DEDUP_SPACING: usize = 256;
const GLOBAL_DEDUP_MODULUS: u64 = 1024;
/// Chunks indexed from the local shard cache, newest shards first (~100 MB of index at most).
const MAX_CACHED_CHUNKS: usize = 1 << 20;
/// Chunks the reader thread may run ahead of the deduper (~8 MB).
const CHUNK_QUEUE: usize = 128;
const READ_BLOCK: usize = 1024 * 1024;

/// What a Xet upload moved, and what it did not have to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XetUploadStats {
    pub files: usize,
    /// Bytes of the files.
    pub bytes: u64,
    /// Bytes of chunks the CAS did not have, before compression.
    pub new_bytes: u64,
    /// Bytes of chunks found in the local shard cache, the CAS's dedup answers or this upload.
    pub deduplicated_bytes: u64,
    pub xorbs: usize,
    /// Bytes of xorb bodies sent (compressed).
    pub xorb_bytes: u64,
    pub shard_bytes: u64,
    /// Global-dedup queries, and how many found a shard.
    pub dedup_queries: usize,
    pub dedup_hits: usize,
}

/// A file as the commit names it.
pub(crate) struct UploadedFile {
    pub path_in_repo: String,
    pub sha256: String,
    pub size: u64,
}

/// The hashes of a chunked file.
pub(crate) struct ChunkedFile {
    pub sha256: [u8; 32],
    pub size: u64,
    pub file_hash: MerkleHash,
}

/// Reads `path` once: cuts it into chunks, hashes each (handing it to `sink`, which returns
/// false to stop) and computes the file's SHA-256 and Xet file hash. Blocking.
pub(crate) fn chunk_file(path: &Path, sink: &mut dyn FnMut(MerkleHash, Bytes) -> bool) -> Result<ChunkedFile> {
    let mut f = std::fs::File::open(path)?;
    let mut chunker = super::chunker::Chunker::default();
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; READ_BLOCK];
    let mut list: Vec<(MerkleHash, u64)> = Vec::new();
    let mut size = 0u64;
    let mut emit = |data: Bytes, list: &mut Vec<(MerkleHash, u64)>| -> Result<()> {
        let h = compute_data_hash(&data);
        list.push((h, data.len() as u64));
        if sink(h, data) {
            Ok(())
        } else {
            Err(HubError::Io(std::io::Error::new(std::io::ErrorKind::Interrupted, "upload stopped")))
        }
    };
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        sha.update(&buf[..n]);
        for c in chunker.update(&buf[..n]) {
            emit(c, &mut list)?;
        }
    }
    if let Some(c) = chunker.finish() {
        emit(c, &mut list)?;
    }
    Ok(ChunkedFile { sha256: sha.finalize().into(), size, file_hash: file_hash(&list) })
}

/// A file's chunks as runs in xorbs (terms).
#[derive(Default)]
pub(crate) struct FileTerms {
    hashes: Vec<MerkleHash>,
    /// Each term with the index of its first chunk in the file.
    terms: Vec<(FileTerm, usize)>,
}

impl FileTerms {
    /// Chunks placed so far.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Where the next chunk would extend the current term.
    pub fn next(&self) -> Option<(XorbId, u32)> {
        self.terms.last().map(|(t, _)| (t.xorb, t.end))
    }

    /// The file's next chunk is chunk `at.1` of xorb `at.0`.
    pub fn place(&mut self, h: MerkleHash, len: u32, (xorb, at): (XorbId, u32)) {
        match self.terms.last_mut() {
            Some((t, _)) if t.xorb == xorb && t.end == at => {
                t.end += 1;
                t.bytes += len;
            }
            _ => self
                .terms
                .push((FileTerm { xorb, start: at, end: at + 1, bytes: len, range_hash: MerkleHash::default() }, self.hashes.len())),
        }
        self.hashes.push(h);
    }

    /// The terms, each with its verification hash: over the raw hashes of its chunks, which
    /// only someone holding the data knows.
    pub fn finish(self) -> Vec<FileTerm> {
        let hashes = self.hashes;
        self.terms
            .into_iter()
            .map(|(mut t, first)| {
                t.range_hash = range_hash_from_chunks(&hashes[first..first + (t.end - t.start) as usize]);
                t
            })
            .collect()
    }
}

/// A sealed xorb's upload: the block the shard lists it with, and the bytes sent.
type XorbUpload = Result<(XorbId, MDBXorbInfo, u64)>;

struct Session<'a> {
    repo: &'a Repo,
    cas: Arc<Cas>,
    index: DedupIndex,
    cache: ShardCache,
    open: Option<(XorbId, XorbBuilder)>,
    uploads: JoinSet<XorbUpload>,
    permits: Arc<tokio::sync::Semaphore>,
    new_xorbs: Vec<MDBXorbInfo>,
    stats: XetUploadStats,
}

/// Uploads `files` through Xet. `Ok(None)`: this hub has no Xet (its token route is absent), so
/// the caller uses LFS.
pub(crate) async fn upload(repo: &Repo, files: &[UploadFile]) -> Result<Option<(Vec<UploadedFile>, XetUploadStats)>> {
    let client = &repo.client;
    let url = format!("{}/xet-write-token/{}", repo.api_url(), encode_revision(&repo.revision));
    // A 404 here cannot mean a missing repo or branch: preupload just found both. It means the
    // route is missing (older hubs answer an unknown /api path with RepoNotFound).
    let Some(tokens) = TokenSource::open(client, url, repo.ctx("")).await? else { return Ok(None) };
    let cas = Arc::new(Cas { client: client.clone(), tokens });
    let cache = ShardCache { dir: super::shard_cache_dir(&client.inner.xet_cache, &cas.base_url().await?) };
    let dir = cache.dir.clone();
    let index = tokio::task::spawn_blocking(move || {
        let mut index = DedupIndex::default();
        ShardCache { dir }.load(&mut index, MAX_CACHED_CHUNKS);
        index
    })
    .await
    .map_err(|e| HubError::InvalidResponse(e.to_string()))?;
    // Each xorb in flight holds up to 64 MiB: a few at once keep the link busy.
    let parallel = client.inner.max_parallel_chunks.clamp(1, 3);
    let mut session = Session {
        repo,
        cas,
        index,
        cache,
        open: None,
        uploads: JoinSet::new(),
        permits: Arc::new(tokio::sync::Semaphore::new(parallel)),
        new_xorbs: Vec::new(),
        stats: XetUploadStats::default(),
    };
    let mut records = Vec::with_capacity(files.len());
    let mut uploaded = Vec::with_capacity(files.len());
    for f in files {
        let (record, file) = session.add_file(f).await?;
        records.push(record);
        uploaded.push(file);
    }
    session.seal_open().await?;
    while let Some(done) = session.uploads.join_next().await {
        session.xorb_uploaded(done)?;
    }
    session.register(&records).await?;
    Ok(Some((uploaded, session.stats)))
}

impl Session<'_> {
    async fn add_file(&mut self, file: &UploadFile) -> Result<(FileRecord, UploadedFile)> {
        let progress = self.repo.client.inner.progress.clone();
        let name = file.path_in_repo.clone();
        progress.start(&name, std::fs::metadata(&file.local).map(|m| m.len()).unwrap_or(0));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(MerkleHash, Bytes)>(CHUNK_QUEUE);
        let local = file.local.clone();
        let reader = tokio::task::spawn_blocking(move || chunk_file(&local, &mut |h, data| tx.blocking_send((h, data)).is_ok()));

        let mut placed = FileTerms::default();
        let mut next_query = 0usize;
        let mut batch = Vec::with_capacity(GLOBAL_DEDUP_SPACING);
        loop {
            batch.clear();
            if rx.recv_many(&mut batch, GLOBAL_DEDUP_SPACING).await == 0 {
                break;
            }
            // Ask the CAS about eligible chunks nothing local knows, before placing the batch,
            // so an answer dedups the chunks right after the one asked about.
            for (i, (h, _)) in batch.iter().enumerate() {
                let at = placed.len() + i;
                if (at == 0 || *h % GLOBAL_DEDUP_MODULUS == 0) && at >= next_query && self.index.lookup(h, None).is_none() {
                    next_query = at + GLOBAL_DEDUP_SPACING;
                    self.query_global(h).await;
                }
            }
            for (h, data) in batch.drain(..) {
                let len = data.len() as u32;
                let at = match self.index.lookup(&h, placed.next()) {
                    Some(found) => {
                        self.stats.deduplicated_bytes += len as u64;
                        found
                    }
                    None => self.store_new(h, data).await?,
                };
                placed.place(h, len, at);
                progress.advance(len as u64);
            }
            self.poll_uploads()?;
        }
        let chunked = reader.await.map_err(|e| HubError::InvalidResponse(e.to_string()))??;
        let terms = placed.finish();
        progress.finish(&name);
        self.stats.files += 1;
        self.stats.bytes += chunked.size;
        let record = FileRecord { file_hash: chunked.file_hash, sha256: chunked.sha256, terms };
        Ok((record, UploadedFile { path_in_repo: name, sha256: hex::encode(chunked.sha256), size: chunked.size }))
    }

    /// Puts a chunk the CAS lacks into the open xorb (sealing it first when full).
    async fn store_new(&mut self, h: MerkleHash, data: Bytes) -> Result<(XorbId, u32)> {
        if self.open.as_ref().is_some_and(|(_, b)| !b.fits(data.len())) {
            self.seal_open().await?;
        }
        let (id, builder) = match &mut self.open {
            Some(open) => open,
            None => self.open.insert((self.index.open_xorb(), XorbBuilder::default())),
        };
        self.stats.new_bytes += data.len() as u64;
        let at = self.index.push_chunk(*id, h, data.len() as u32);
        builder.push(h, data);
        Ok((*id, at))
    }

    /// Sends the open xorb in the background, once an upload slot is free.
    async fn seal_open(&mut self) -> Result<()> {
        let Some((id, builder)) = self.open.take() else { return Ok(()) };
        if builder.is_empty() {
            return Ok(());
        }
        let permit = self.permits.clone().acquire_owned().await.map_err(|e| HubError::InvalidResponse(e.to_string()))?;
        let cas = self.cas.clone();
        self.uploads.spawn(async move {
            let sealed =
                tokio::task::spawn_blocking(move || builder.seal()).await.map_err(|e| HubError::InvalidResponse(e.to_string()))??;
            let body = Bytes::from(sealed.body);
            let sent = body.len() as u64;
            let path = format!("/v1/xorbs/{PREFIX}/{}", sealed.hash.hex());
            let resp = check(cas.send(Method::POST, &path, Some(body), None).await?, &Default::default()).await?;
            resp.json::<XorbUploadResponse>().await.map_err(|e| protocol_error(format!("xorb upload answer: {e}")))?;
            drop(permit);
            Ok((id, sealed.info, sent))
        });
        Ok(())
    }

    /// Collects finished xorb uploads, failing fast on the first error.
    fn poll_uploads(&mut self) -> Result<()> {
        while let Some(done) = self.uploads.try_join_next() {
            self.xorb_uploaded(done)?;
        }
        Ok(())
    }

    fn xorb_uploaded(&mut self, done: std::result::Result<XorbUpload, tokio::task::JoinError>) -> Result<()> {
        let (id, info, sent) = done.map_err(|e| HubError::InvalidResponse(e.to_string()))??;
        self.index.seal(id, info.metadata.xorb_hash);
        self.stats.xorbs += 1;
        self.stats.xorb_bytes += sent;
        self.new_xorbs.push(info);
        Ok(())
    }

    /// `GET /v1/chunks/default/{hash}`: a shard (chunk hashes HMAC-keyed) of xorbs holding that
    /// chunk, or nothing. Errors only cost the dedup, as in hf_xet.
    async fn query_global(&mut self, h: &MerkleHash) {
        self.stats.dedup_queries += 1;
        let path = format!("/v1/chunks/{PREFIX}/{}", h.hex());
        let Ok(resp) = self.cas.send(Method::GET, &path, None, None).await else { return };
        if resp.status() != StatusCode::OK {
            return;
        }
        let Ok(body) = resp.bytes().await else { return };
        let Ok((info, xorbs)) = shard::read_xorbs(&mut std::io::Cursor::new(&body[..])) else { return };
        self.stats.dedup_hits += 1;
        shard::index_shard(&mut self.index, &info, xorbs);
        let _ = self.cache.save(&body);
    }

    /// Registers the files (and the new xorbs) with the CAS, then keeps the shards for later
    /// uploads.
    async fn register(&mut self, records: &[FileRecord]) -> Result<()> {
        let shards = shard::build_shards(records, &self.index, std::mem::take(&mut self.new_xorbs))?;
        for s in shards {
            let full = shard::serialize_for_cache(&s)?;
            let body = Bytes::from(shard::upload_form(&full)?);
            self.stats.shard_bytes += body.len() as u64;
            let resp = self.cas.send(Method::POST, "/v1/shards", Some(body), None).await?;
            if resp.status() == StatusCode::BAD_REQUEST {
                // Most likely a xorb the shard cache vouched for is gone from the CAS (collected):
                // forget the cache, so that a retry sends those chunks again.
                let _ = std::fs::remove_dir_all(&self.cache.dir);
                let url = resp.url().to_string();
                let body = resp.text().await.unwrap_or_default();
                return Err(HubError::Http {
                    status: 400,
                    url,
                    message: format!(
                        "the CAS refused the upload's shard ({body}); the local Xet shard cache was cleared: retry the upload"
                    ),
                });
            }
            let resp = check(resp, &self.repo.ctx("")).await?;
            resp.json::<ShardUploadResponse>().await.map_err(|e| protocol_error(format!("shard upload answer: {e}")))?;
            // Only the cache is lost if this fails.
            let _ = self.cache.save(&full);
        }
        Ok(())
    }
}
