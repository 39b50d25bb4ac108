//! Parsing the NDJSON commit body: one JSON object per line, the header first, then one
//! operation per line. Inline files are stored as their lines arrive.

use super::{resolve_lfs, store_inline, CommitHeader, CommitOp, Content};
use crate::app::AppState;
use crate::auth::Caller;
use crate::db::RepoRow;
use crate::error::{ApiError, ApiResult};
use crate::names::validate_repo_path;
use crate::storage::is_sha256;
use axum::body::{Body, BodyDataStream};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use hub_client::types::{NdjsonFile, NdjsonHeader, NdjsonLfsFile, NdjsonPath};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    key: String,
    value: serde_json::Value,
}

fn parse_value<T: serde::de::DeserializeOwned>(value: serde_json::Value, key: &str, line: usize) -> ApiResult<T> {
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("line {line}: invalid {key:?} value: {e}")))
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Reads the NDJSON body line by line; inline files go straight to the object database (or to
/// LFS storage when large), so memory holds one line at a time.
#[tracing::instrument(skip_all, fields(repo = %repo.id))]
pub async fn parse_body(state: &AppState, caller: &Caller, repo: &RepoRow, body: Body) -> ApiResult<(CommitHeader, Vec<CommitOp>)> {
    let mut lines = LineReader::new(body, state.settings.max_commit_bytes);
    let mut line_no = 0usize;
    let mut header: Option<CommitHeader> = None;
    let mut ops = Vec::new();
    while let Some(line) = lines.next_line().await? {
        line_no += 1;
        let Some(parsed) = parse_line(line, line_no).await? else { continue };
        match (parsed.key.as_str(), &header) {
            ("header", None) => header = Some(parse_header(parsed.value, line_no)?),
            ("header", Some(_)) => return Err(ApiError::bad_request(format!("line {line_no}: duplicate header"))),
            (_, None) => return Err(ApiError::bad_request("the first line of a commit must be its header")),
            (key, Some(_)) => ops.push(parse_op(state, caller, repo, key, parsed.value, line_no).await?),
        }
    }
    Ok((check_header(header)?, ops))
}

/// Splits a request body into lines as its chunks arrive, refusing bodies over `max_total`.
struct LineReader {
    stream: BodyDataStream,
    buf: BytesMut,
    total: u64,
    max_total: u64,
    finished: bool,
    /// How far `buf` is known to hold no newline: each byte is scanned once, however many
    /// chunks a long line arrives in.
    scanned: usize,
}

impl LineReader {
    fn new(body: Body, max_total: u64) -> LineReader {
        LineReader { stream: body.into_data_stream(), buf: BytesMut::new(), total: 0, max_total, finished: false, scanned: 0 }
    }

    /// The next line, with its newline (the last line may have none); None at the end.
    async fn next_line(&mut self) -> ApiResult<Option<Bytes>> {
        loop {
            match self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let line = self.buf.split_to(self.scanned + i + 1).freeze();
                    self.scanned = 0;
                    return Ok(Some(line));
                }
                None if self.finished && !self.buf.is_empty() => {
                    self.scanned = 0;
                    return Ok(Some(self.buf.split().freeze()));
                }
                None if self.finished => return Ok(None),
                None => self.scanned = self.buf.len(),
            }
            let chunk = match self.stream.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => return Err(ApiError::bad_request(format!("could not read the request body: {e}"))),
                None => {
                    self.finished = true;
                    Bytes::new()
                }
            };
            self.total += chunk.len() as u64;
            if self.total > self.max_total {
                let max_total = self.max_total;
                return Err(ApiError::payload_too_large(format!(
                    "commit body exceeds {max_total} bytes; upload large files through Git LFS instead of inline"
                )));
            }
            self.buf.extend_from_slice(&chunk);
        }
    }
}

/// A line's `key` and `value`, or None for a blank line. The line's bytes are released once
/// parsed, before any content it holds is stored.
async fn parse_line(line: Bytes, line_no: usize) -> ApiResult<Option<Line>> {
    let text = line.strip_suffix(b"\n").unwrap_or(&line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let n = line_no;
    let parse = move |text: &[u8]| {
        serde_json::from_slice::<Line>(text)
            .map_err(|e| ApiError::bad_request(format!("line {n}: not a JSON object with \"key\" and \"value\": {e}")))
    };
    // A long line (inline content) is parsed off the async threads.
    let parsed: Line = if text.len() > 1024 * 1024 {
        let owned = line.slice_ref(text);
        tokio::task::spawn_blocking(move || parse(&owned)).await??
    } else {
        parse(text)?
    };
    Ok(Some(parsed))
}

fn parse_header(value: serde_json::Value, line_no: usize) -> ApiResult<CommitHeader> {
    let h: NdjsonHeader = parse_value(value, "header", line_no)?;
    Ok(CommitHeader {
        summary: h.summary.unwrap_or_default(),
        description: h.description.unwrap_or_default(),
        parent_commit: h.parent_commit,
    })
}

/// One operation line (`file`, `lfsFile`, `deletedFile`, `deletedFolder`) as a commit operation;
/// an inline file's bytes are stored on the way.
async fn parse_op(
    state: &AppState,
    caller: &Caller,
    repo: &RepoRow,
    key: &str,
    value: serde_json::Value,
    line_no: usize,
) -> ApiResult<CommitOp> {
    match key {
        "file" => {
            let f: NdjsonFile = parse_value(value, "file", line_no)?;
            validate_repo_path(&f.path)?;
            let data = match f.encoding.as_deref().unwrap_or("base64") {
                "base64" => BASE64
                    .decode(f.content.as_bytes())
                    .map_err(|e| ApiError::bad_request(format!("line {line_no}: invalid base64 content for {:?}: {e}", f.path)))?,
                "utf-8" | "utf8" => f.content.into_bytes(),
                other => return Err(ApiError::bad_request(format!("line {line_no}: unknown encoding {other:?}"))),
            };
            let content = store_inline(state, caller, &repo.id, &f.path, data).await?;
            Ok(CommitOp::Add { path: f.path, content })
        }
        "lfsFile" => {
            let f: NdjsonLfsFile = parse_value(value, "lfsFile", line_no)?;
            validate_repo_path(&f.path)?;
            if f.algo.as_deref().is_some_and(|a| a != "sha256") {
                return Err(ApiError::bad_request(format!("line {line_no}: only sha256 LFS objects are supported")));
            }
            let oid = f.oid.to_ascii_lowercase();
            if !is_sha256(&oid) {
                return Err(ApiError::bad_request(format!("line {line_no}: {:?} is not a sha256 oid", f.oid)));
            }
            let obj = resolve_lfs(state, caller, &repo.id, &f.path, &oid, f.size).await?;
            Ok(CommitOp::Add { path: f.path, content: Content::Lfs(obj) })
        }
        "deletedFile" => {
            let f: NdjsonPath = parse_value(value, "deletedFile", line_no)?;
            validate_repo_path(&f.path)?;
            Ok(CommitOp::DeleteFile { path: f.path })
        }
        "deletedFolder" => {
            let f: NdjsonPath = parse_value(value, "deletedFolder", line_no)?;
            let path = f.path.trim_end_matches('/').to_string();
            validate_repo_path(&path)?;
            Ok(CommitOp::DeleteFolder { path })
        }
        other => Err(ApiError::bad_request(format!(
            "line {line_no}: unknown operation key {other:?} (expected file, lfsFile, deletedFile or deletedFolder)"
        ))),
    }
}

/// The header a complete body carried: present, titled, and naming its parent by a commit id.
fn check_header(header: Option<CommitHeader>) -> ApiResult<CommitHeader> {
    let header = header.ok_or_else(|| ApiError::bad_request("empty commit body: a header line is required"))?;
    if header.summary.trim().is_empty() {
        return Err(ApiError::bad_request("the commit title (header.summary) must not be empty"));
    }
    if let Some(p) = &header.parent_commit {
        if !(5..=40).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_request(format!("parentCommit {p:?} is not a commit id")));
        }
    }
    Ok(header)
}
