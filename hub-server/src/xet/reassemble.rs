//! A Xet file's bytes for clients that do not speak Xet (plain `resolve`, git-lfs, hf-hub): the
//! hub reads each term's stored range and unpacks it, one chunk in memory at a time.

use super::chunks::ChunkReader;
use super::layout::RangePlan;
use super::reconstruct::{plan_with_layouts, Layouts};
use crate::app::AppState;
use crate::db::XetFileRow;
use crate::error::ApiResult;
use crate::storage::{ByteStream, XetKey};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};

/// Planned at a time: the chunk tables of one window's xorbs are in memory, not the whole file's.
const WINDOW: u64 = 256 * 1024 * 1024;
/// Unpacked chunks queued ahead of a slow reader.
const QUEUE: usize = 8;

type Sender = futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Streams bytes `[first, last]` of a Xet file. The first window is planned before this returns,
/// so a missing xorb is an error answer rather than a cut-off body.
pub async fn stream_range(state: &AppState, file: &XetFileRow, first: u64, last: u64) -> ApiResult<ByteStream> {
    let planned = plan_with_layouts(state, file, first, last.min(first.saturating_add(WINDOW - 1))).await?;
    let (mut tx, rx) = futures::channel::mpsc::channel(QUEUE);
    let (state, file) = (state.clone(), file.clone());
    tokio::spawn(async move {
        if let Err(e) = produce(&state, &file, first, last, planned, &mut tx).await {
            tracing::warn!(file = %file.file_hash, error = %e, "could not reassemble a Xet file");
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(rx.boxed())
}

async fn produce(
    state: &AppState,
    file: &XetFileRow,
    first: u64,
    last: u64,
    planned: (RangePlan, Layouts),
    tx: &mut Sender,
) -> Result<(), std::io::Error> {
    let mut next = Some(planned);
    let mut at = first;
    while at <= last {
        let window_end = last.min(at.saturating_add(WINDOW - 1));
        let (plan, layouts) = match next.take() {
            Some(p) => p,
            None => plan_with_layouts(state, file, at, window_end).await.map_err(|e| std::io::Error::other(e.message))?,
        };
        let mut skip = plan.offset as usize;
        let mut remaining = window_end - at + 1;
        for term in &plan.terms {
            let layout = &layouts[&term.xorb];
            let (b0, b1) = layout.byte_range(term.start, term.end).ok_or_else(|| std::io::Error::other("a term lies outside its xorb"))?;
            let mut stored = state.storage.read_xet(&XetKey::Xorb(term.xorb.hex()), b0..b1).await.map_err(std::io::Error::other)?;
            let mut reader = ChunkReader::default();
            while let Some(piece) = stored.next().await {
                reader.push(&piece?);
                while let Some(chunk) = reader.next_chunk().map_err(std::io::Error::other)? {
                    let mut data = Bytes::from(chunk.data);
                    if skip > 0 {
                        let n = skip.min(data.len());
                        data = data.slice(n..);
                        skip -= n;
                    }
                    data.truncate(remaining.min(data.len() as u64) as usize);
                    remaining -= data.len() as u64;
                    if !data.is_empty() && tx.send(Ok(data)).await.is_err() {
                        return Ok(()); // the client went away
                    }
                }
            }
            reader.finish().map_err(std::io::Error::other)?;
            if remaining == 0 {
                break;
            }
        }
        if remaining != 0 {
            return Err(std::io::Error::other(format!("Xet file {} ended {remaining} bytes early", file.file_hash)));
        }
        at = window_end + 1;
    }
    Ok(())
}

/// The SHA-256 of a Xet file's bytes, computed by reading them back.
pub async fn sha256_of(state: &AppState, file: &XetFileRow) -> ApiResult<String> {
    let mut hasher = Sha256::new();
    if file.size > 0 {
        let mut stream = stream_range(state, file, 0, file.size - 1).await?;
        while let Some(piece) = stream.next().await {
            hasher.update(&piece?);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}
