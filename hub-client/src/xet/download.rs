//! Downloads through Xet: read token → the file's reconstruction, one block of the file at a
//! time → the xorb byte ranges it names, fetched in parallel from their signed URLs → chunks
//! decompressed and written where they belong in the partial file. Blocks finished are logged
//! beside the file, so an interrupted download resumes with the blocks still missing.

use super::{protocol_error, send_with_retry, Cas, TokenSource, XetFileData};
use crate::api::{check, ErrorContext, Repo};
use crate::error::{HubError, Result};
use crate::xet_types::{ChunkRange, HttpRange, ReconstructionTerm, ReconstructionV1, ReconstructionV2, XorbFetch, XorbRangeDescriptor};
use bytes::BytesMut;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::RANGE;
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use xet_core_structures::xorb_object::parse_chunk_header;

/// A block is re-planned this many times when its signed URLs expire (403).
const EXPIRED_URL_RETRIES: usize = 3;
/// Bytes gathered before a write to the partial file.
const WRITE_BUFFER: usize = 1024 * 1024;

/// Where one fetched range's chunks go: for each term it serves, the term's chunks and the
/// file offset its first chunk starts at.
struct Fetch {
    url: String,
    bytes: HttpRange,
    chunks: ChunkRange,
    terms: Vec<(ChunkRange, u64)>,
}

enum FetchError {
    /// The signed URL expired: plan the block again.
    Expired,
    Failed(HubError),
}

impl From<HubError> for FetchError {
    fn from(e: HubError) -> Self {
        FetchError::Failed(e)
    }
}

impl From<std::io::Error> for FetchError {
    fn from(e: std::io::Error) -> Self {
        FetchError::Failed(e.into())
    }
}

/// The reconstruction of bytes `[start, end]` of a file, from /v2 or (when a hub has only that)
/// /v1, in v2's form.
async fn reconstruction(cas: &Cas, v1_only: &AtomicBool, file_hash: &str, start: u64, end: u64) -> Result<ReconstructionV2> {
    let range = Some(format!("bytes={start}-{end}"));
    if !v1_only.load(Ordering::Relaxed) {
        let resp = cas.send(Method::GET, &format!("/v2/reconstructions/{file_hash}"), None, range.clone()).await?;
        if !matches!(resp.status(), StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED) {
            let resp = check(resp, &Default::default()).await?;
            return resp.json().await.map_err(|e| protocol_error(format!("reconstruction of {file_hash}: {e}")));
        }
        v1_only.store(true, Ordering::Relaxed);
    }
    let resp = cas.send(Method::GET, &format!("/v1/reconstructions/{file_hash}"), None, range).await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(protocol_error(format!("the CAS does not know file {file_hash} that the hub advertised")));
    }
    let v1: ReconstructionV1 =
        check(resp, &Default::default()).await?.json().await.map_err(|e| protocol_error(format!("reconstruction of {file_hash}: {e}")))?;
    let xorbs = v1
        .fetch_info
        .into_iter()
        .map(|(xorb, infos)| {
            let fetches = infos
                .into_iter()
                .map(|i| XorbFetch { url: i.url, ranges: vec![XorbRangeDescriptor { chunks: i.range, bytes: i.url_range }] })
                .collect();
            (xorb, fetches)
        })
        .collect();
    Ok(ReconstructionV2 { offset_into_first_range: v1.offset_into_first_range, terms: v1.terms, xorbs })
}

/// Which range serves each term, and where each term lands in the file. The first term starts
/// `offset_into_first_range` bytes before `start`.
fn plan(r: &ReconstructionV2, start: u64) -> Result<Vec<Fetch>> {
    let mut fetches: Vec<Fetch> = Vec::new();
    let mut offset =
        start.checked_sub(r.offset_into_first_range).ok_or_else(|| protocol_error("reconstruction starts before the file does"))?;
    for ReconstructionTerm { hash, unpacked_length, range } in &r.terms {
        if range.start >= range.end {
            return Err(protocol_error(format!("empty term in xorb {hash}")));
        }
        let (url, d) = r
            .xorbs
            .get(hash)
            .into_iter()
            .flatten()
            .flat_map(|f| f.ranges.iter().map(move |d| (&f.url, d)))
            .find(|(_, d)| d.chunks.start <= range.start && range.end <= d.chunks.end)
            .ok_or_else(|| protocol_error(format!("no fetch entry holds chunks {}..{} of xorb {hash}", range.start, range.end)))?;
        match fetches.iter_mut().find(|f| f.url == *url && f.bytes == d.bytes) {
            Some(f) => f.terms.push((*range, offset)),
            None => fetches.push(Fetch { url: url.clone(), bytes: d.bytes, chunks: d.chunks, terms: vec![(*range, offset)] }),
        }
        offset += *unpacked_length as u64;
    }
    Ok(fetches)
}

/// Writes runs of bytes at file offsets, merging contiguous ones.
struct RangeWriter {
    file: tokio::fs::File,
    at: u64,
    buf: Vec<u8>,
}

impl RangeWriter {
    async fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if offset != self.at + self.buf.len() as u64 || self.buf.len() >= WRITE_BUFFER {
            self.flush().await?;
            self.at = offset;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.file.seek(std::io::SeekFrom::Start(self.at)).await?;
            self.file.write_all(&self.buf).await?;
            // tokio hands the write to a blocking thread: wait until it is on disk, since the
            // block counts as written (and gets hashed) as soon as this returns.
            self.file.flush().await?;
            self.at += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Repo {
    /// Downloads a Xet-backed file into `partial` and returns its SHA-256. `Ok(None)`: the hub
    /// hands out no read token after all, so the caller downloads over plain HTTP.
    pub(crate) async fn download_xet(&self, xet: &XetFileData, partial: &Path, size: u64, path: &str) -> Result<Option<String>> {
        let ctx = ErrorContext { path: path.to_string(), ..self.ctx(path) };
        let Some(tokens) = TokenSource::open(&self.client, xet.refresh_url.clone(), ctx).await? else { return Ok(None) };
        let cas = Cas { client: self.client.clone(), tokens };
        let block = self.client.inner.chunk_size;
        // Same block size and log as the ranged HTTP download: either may finish what the other began.
        let (parts_log, done, done_bytes) = crate::download::open_partial(partial, size, block)?;
        let progress = self.client.inner.progress.clone();
        let count = size.div_ceil(block);
        progress.advance(done_bytes);
        let log = tokio::sync::Mutex::new(tokio::fs::OpenOptions::new().create(true).append(true).open(&parts_log).await?);
        let finished = Arc::new((std::sync::Mutex::new(done.clone()), tokio::sync::Notify::new()));
        let hasher = tokio::spawn(crate::download::hash_in_order(partial.to_path_buf(), size, block, finished.clone()));
        let v1_only = AtomicBool::new(false);
        let blocks = futures::stream::iter((0..count).filter(|i| !done.contains(i)))
            .map(|i| {
                let (cas, v1_only, log, finished) = (&cas, &v1_only, &log, finished.clone());
                async move {
                    let start = i * block;
                    let end = ((i + 1) * block).min(size) - 1;
                    self.xet_block(cas, v1_only, &xet.hash, start, end, partial).await?;
                    log.lock().await.write_all(format!("{i}\n").as_bytes()).await?;
                    finished.0.lock().unwrap_or_else(|e| e.into_inner()).insert(i);
                    finished.1.notify_one();
                    Ok::<_, HubError>(())
                }
            })
            // Blocks run two at a time; each fetches its ranges in parallel.
            .buffer_unordered(2)
            .try_collect::<()>()
            .await;
        if let Err(e) = blocks {
            hasher.abort();
            return Err(e);
        }
        Ok(Some(hasher.await.map_err(|e| HubError::InvalidResponse(e.to_string()))??))
    }

    /// Bytes `[start, end]` of the file, planned anew when signed URLs expire.
    async fn xet_block(&self, cas: &Cas, v1_only: &AtomicBool, file_hash: &str, start: u64, end: u64, partial: &Path) -> Result<()> {
        for _ in 0..EXPIRED_URL_RETRIES {
            let r = reconstruction(cas, v1_only, file_hash, start, end).await?;
            let fetches = plan(&r, start)?;
            let outcome = futures::stream::iter(fetches)
                .map(|f| self.fetch_range(f, start, end, partial))
                .buffer_unordered(self.client.inner.max_parallel_chunks)
                .try_collect::<Vec<u64>>()
                .await;
            match outcome {
                Ok(written) if written.iter().sum::<u64>() == end - start + 1 => return Ok(()),
                Ok(written) => {
                    return Err(protocol_error(format!(
                        "the reconstruction of bytes {start}-{end} of {file_hash} covers {} bytes",
                        written.iter().sum::<u64>()
                    )))
                }
                Err(FetchError::Expired) => continue,
                Err(FetchError::Failed(e)) => return Err(e),
            }
        }
        Err(protocol_error(format!("the CAS kept handing out expired URLs for {file_hash}")))
    }

    /// Fetches one xorb range (exactly the range given, without the hub token: the URL is
    /// signed) and writes the parts of its chunks inside `[start, end]`. Returns bytes written.
    async fn fetch_range(&self, f: Fetch, start: u64, end: u64, partial: &Path) -> std::result::Result<u64, FetchError> {
        let http = &self.client.inner.http;
        let range = format!("bytes={}-{}", f.bytes.start, f.bytes.end);
        let resp = send_with_retry(|| async { Ok(http.get(&f.url).header(RANGE, &range).send().await?) }).await?;
        if resp.status() == StatusCode::FORBIDDEN {
            return Err(FetchError::Expired);
        }
        let resp = check(resp, &Default::default()).await?;
        // A whole-object 200 would start at byte 0, not at the range.
        if resp.status() == StatusCode::OK && f.bytes.start != 0 {
            return Err(protocol_error(format!("{} ignored the Range header", f.url)).into());
        }
        let progress = self.client.inner.progress.clone();
        let mut out = RangeWriter { file: tokio::fs::OpenOptions::new().write(true).open(partial).await?, at: 0, buf: Vec::new() };
        // Where each served term's first chunk begins, in unpacked bytes from the range's start.
        let mut term_base: Vec<Option<u64>> = vec![None; f.terms.len()];
        let (mut chunk, mut unpacked, mut written) = (f.chunks.start, 0u64, 0u64);
        let mut pending = BytesMut::new();
        let mut body = resp.bytes_stream();
        let mut ended = false;
        while chunk < f.chunks.end {
            // One whole chunk (8-byte header, then its compressed bytes) in `pending`.
            let need = match pending.get(..8) {
                Some(h) => {
                    let header = parse_chunk_header(h.try_into().map_err(|_| protocol_error("chunk header"))?)
                        .map_err(|e| protocol_error(format!("bad chunk in {}: {e}", f.url)))?;
                    Some((header, 8 + header.get_compressed_length() as usize))
                }
                None => None,
            };
            let Some((header, need)) = need.filter(|(_, n)| pending.len() >= *n) else {
                if ended {
                    return Err(protocol_error(format!("{} ended inside chunk {chunk}", f.url)).into());
                }
                match body.next().await {
                    Some(bytes) => pending.extend_from_slice(&bytes.map_err(HubError::from)?),
                    None => ended = true,
                }
                continue;
            };
            let raw = pending.split_to(need);
            let scheme = header.get_compression_scheme().map_err(|e| protocol_error(e.to_string()))?;
            let data = scheme.decompress_from_slice(&raw[8..]).map_err(|e| protocol_error(format!("chunk {chunk} of {}: {e}", f.url)))?;
            if data.len() != header.get_uncompressed_length() as usize {
                return Err(protocol_error(format!("chunk {chunk} of {} has the wrong length", f.url)).into());
            }
            for (k, (range, offset)) in f.terms.iter().enumerate() {
                if chunk == range.start {
                    term_base[k] = Some(unpacked);
                }
                let Some(base) = term_base[k].filter(|_| chunk < range.end) else { continue };
                // This chunk's place in the file, clipped to the block.
                let at = offset + (unpacked - base);
                let from = at.max(start);
                let to = (at + data.len() as u64).min(end + 1);
                if from < to {
                    out.write(from, &data[(from - at) as usize..(to - at) as usize]).await?;
                    written += to - from;
                    progress.advance(to - from);
                }
            }
            unpacked += data.len() as u64;
            chunk += 1;
        }
        out.flush().await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn term(hash: &str, start: u32, end: u32, len: u32) -> ReconstructionTerm {
        ReconstructionTerm { hash: hash.into(), unpacked_length: len, range: ChunkRange { start, end } }
    }

    #[test]
    fn terms_find_their_range_and_their_place() {
        let d = |cs, ce, bs, be| XorbRangeDescriptor { chunks: ChunkRange { start: cs, end: ce }, bytes: HttpRange { start: bs, end: be } };
        let mut xorbs = HashMap::new();
        xorbs.insert("a".to_string(), vec![XorbFetch { url: "u1".into(), ranges: vec![d(0, 4, 0, 999)] }]);
        xorbs.insert("b".to_string(), vec![XorbFetch { url: "u2".into(), ranges: vec![d(2, 3, 500, 600)] }]);
        let r = ReconstructionV2 {
            offset_into_first_range: 100,
            terms: vec![term("a", 1, 3, 1000), term("b", 2, 3, 50), term("a", 0, 2, 700)],
            xorbs,
        };
        let fetches = plan(&r, 5000).unwrap();
        assert_eq!(fetches.len(), 2, "both terms of xorb a share one fetch");
        assert_eq!(fetches[0].terms, vec![(ChunkRange { start: 1, end: 3 }, 4900), (ChunkRange { start: 0, end: 2 }, 5950)]);
        assert_eq!(fetches[1].terms, vec![(ChunkRange { start: 2, end: 3 }, 5900)]);

        let missing = ReconstructionV2 { offset_into_first_range: 0, terms: vec![term("b", 0, 3, 1)], xorbs: r.xorbs.clone() };
        assert!(plan(&missing, 0).is_err(), "chunks 0..3 of b are in no descriptor");
    }
}
