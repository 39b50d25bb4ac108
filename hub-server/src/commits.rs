//! The NDJSON commit (`POST /api/{t}s/{ns}/{name}/commit/{rev}`): all or nothing. Every object
//! is written before the branch moves; the ref moves by compare-and-swap under the repo lock.

use crate::app::AppState;
use crate::attributes::{exact_lfs_rule, LfsRules, LFS_SIZE_THRESHOLD};
use crate::auth::Caller;
use crate::content::{self, HeldObject};
use crate::db::RepoRow;
use crate::error::{ApiError, ApiResult};
use crate::git::{self, LfsPointer, TreeError, TreeOp};
use crate::names::validate_repo_path;
use crate::repos::Author;
use crate::storage::is_sha256;
use axum::body::Body;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use git2::{FileMode, Oid, Repository, Signature};
use serde::Deserialize;

#[derive(Debug, Default)]
pub struct CommitHeader {
    pub summary: String,
    pub description: String,
    pub parent_commit: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Content {
    /// Inline bytes already written to the git object database.
    Blob { oid: Oid, size: u64 },
    /// Large-file content the repo holds (or will, once the commit lands).
    Lfs(HeldObject),
}

#[derive(Debug, Clone)]
pub enum CommitOp {
    Add { path: String, content: Content },
    DeleteFile { path: String },
    DeleteFolder { path: String },
}

impl CommitOp {
    pub fn path(&self) -> &str {
        match self {
            CommitOp::Add { path, .. } | CommitOp::DeleteFile { path } | CommitOp::DeleteFolder { path } => path,
        }
    }
}

/// Where a commit goes: a branch, an existing PR ref, or a new PR opened from a branch.
#[derive(Debug, Clone)]
pub enum Target {
    Ref(String),
    NewPullRequest { from: String },
}

#[derive(Debug)]
pub struct CommitOutcome {
    pub commit: Oid,
    pub pr_number: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    key: String,
    value: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HeaderValue {
    summary: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parent_commit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileValue {
    path: String,
    content: String,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LfsFileValue {
    path: String,
    oid: String,
    #[serde(default)]
    algo: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathValue {
    path: String,
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
    let max_total = state.settings.max_commit_bytes;
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let mut total = 0u64;
    let mut line_no = 0usize;
    let mut header: Option<CommitHeader> = None;
    let mut ops = Vec::new();
    let mut finished = false;
    // How far `buf` is known to hold no newline: each byte is scanned once, however many
    // chunks a long line arrives in.
    let mut scanned = 0usize;
    while !finished {
        let chunk = match stream.next().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(ApiError::bad_request(format!("could not read the request body: {e}"))),
            None => {
                finished = true;
                Bytes::new()
            }
        };
        total += chunk.len() as u64;
        if total > max_total {
            return Err(ApiError::payload_too_large(format!(
                "commit body exceeds {max_total} bytes; upload large files through Git LFS instead of inline"
            )));
        }
        buf.extend_from_slice(&chunk);
        loop {
            let line = match buf[scanned..].iter().position(|b| *b == b'\n') {
                Some(i) => buf.split_to(scanned + i + 1).freeze(),
                None if finished && !buf.is_empty() => buf.split().freeze(),
                None => {
                    scanned = buf.len();
                    break;
                }
            };
            scanned = 0;
            line_no += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
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
            drop(line);
            match (parsed.key.as_str(), &header) {
                ("header", None) => {
                    let h: HeaderValue = parse_value(parsed.value, "header", line_no)?;
                    header = Some(CommitHeader {
                        summary: h.summary.unwrap_or_default(),
                        description: h.description.unwrap_or_default(),
                        parent_commit: h.parent_commit,
                    });
                }
                ("header", Some(_)) => return Err(ApiError::bad_request(format!("line {line_no}: duplicate header"))),
                (_, None) => return Err(ApiError::bad_request("the first line of a commit must be its header")),
                ("file", Some(_)) => {
                    let f: FileValue = parse_value(parsed.value, "file", line_no)?;
                    validate_repo_path(&f.path)?;
                    let data = match f.encoding.as_deref().unwrap_or("base64") {
                        "base64" => BASE64
                            .decode(f.content.as_bytes())
                            .map_err(|e| ApiError::bad_request(format!("line {line_no}: invalid base64 content for {:?}: {e}", f.path)))?,
                        "utf-8" | "utf8" => f.content.into_bytes(),
                        other => return Err(ApiError::bad_request(format!("line {line_no}: unknown encoding {other:?}"))),
                    };
                    let content = store_inline(state, caller, &repo.id, &f.path, data).await?;
                    ops.push(CommitOp::Add { path: f.path, content });
                }
                ("lfsFile", Some(_)) => {
                    let f: LfsFileValue = parse_value(parsed.value, "lfsFile", line_no)?;
                    validate_repo_path(&f.path)?;
                    if f.algo.as_deref().is_some_and(|a| a != "sha256") {
                        return Err(ApiError::bad_request(format!("line {line_no}: only sha256 LFS objects are supported")));
                    }
                    let oid = f.oid.to_ascii_lowercase();
                    if !is_sha256(&oid) {
                        return Err(ApiError::bad_request(format!("line {line_no}: {:?} is not a sha256 oid", f.oid)));
                    }
                    let obj = resolve_lfs(state, caller, &repo.id, &f.path, &oid, f.size).await?;
                    ops.push(CommitOp::Add { path: f.path, content: Content::Lfs(obj) });
                }
                ("deletedFile", Some(_)) => {
                    let f: PathValue = parse_value(parsed.value, "deletedFile", line_no)?;
                    validate_repo_path(&f.path)?;
                    ops.push(CommitOp::DeleteFile { path: f.path });
                }
                ("deletedFolder", Some(_)) => {
                    let f: PathValue = parse_value(parsed.value, "deletedFolder", line_no)?;
                    let path = f.path.trim_end_matches('/').to_string();
                    validate_repo_path(&path)?;
                    ops.push(CommitOp::DeleteFolder { path });
                }
                (other, Some(_)) => {
                    return Err(ApiError::bad_request(format!(
                        "line {line_no}: unknown operation key {other:?} (expected file, lfsFile, deletedFile or deletedFolder)"
                    )))
                }
            }
        }
    }
    let header = header.ok_or_else(|| ApiError::bad_request("empty commit body: a header line is required"))?;
    if header.summary.trim().is_empty() {
        return Err(ApiError::bad_request("the commit title (header.summary) must not be empty"));
    }
    if let Some(p) = &header.parent_commit {
        if !(5..=40).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_request(format!("parentCommit {p:?} is not a commit id")));
        }
    }
    Ok((header, ops))
}

/// The content an `lfsFile` line (or pointer text) names, if it may enter this repo; otherwise
/// the answer is the same whether or not any other repo has it.
async fn resolve_lfs(state: &AppState, caller: &Caller, repo_id: &str, path: &str, oid: &str, size: Option<u64>) -> ApiResult<HeldObject> {
    let missing = || {
        ApiError::bad_request(format!(
            "LFS object {oid} for {path:?} is not stored; upload it through the LFS batch API (or Xet) before committing"
        ))
    };
    let obj = content::resolve_for_write(state, caller, repo_id, oid).await?.ok_or_else(missing)?;
    if size.is_some_and(|s| s != obj.size) {
        return Err(ApiError::bad_request(format!("LFS object {oid} has {} bytes, not {:?}", obj.size, size)));
    }
    Ok(obj)
}

/// Stores the bytes of an added file: in git, or in LFS storage when large. Text that is an LFS
/// pointer names content instead, which must be resolvable like an `lfsFile` line.
#[tracing::instrument(skip_all, fields(repo = %repo_id, path = %path, bytes = data.len()))]
pub async fn store_inline(state: &AppState, caller: &Caller, repo_id: &str, path: &str, data: Vec<u8>) -> ApiResult<Content> {
    if let Some(pointer) = LfsPointer::parse(&data) {
        return Ok(Content::Lfs(resolve_lfs(state, caller, repo_id, path, &pointer.oid, Some(pointer.size)).await?));
    }
    if data.len() as u64 >= LFS_SIZE_THRESHOLD {
        let (size, oid) = state.storage.put_content(Bytes::from(data)).await?;
        state.db.record_lfs_object(&oid, size).await?;
        return Ok(Content::Lfs(HeldObject { oid, size, xet_hash: None }));
    }
    let size = data.len() as u64;
    let oid = state.with_git(repo_id, move |g| Ok(g.blob(&data)?)).await?;
    Ok(Content::Blob { oid, size })
}

/// The `.gitattributes` this commit leaves behind: the one it adds, or the current one.
fn final_attributes(repo: &Repository, base: Oid, ops: &[CommitOp]) -> ApiResult<String> {
    let mut text = git::read_file(repo, base, ".gitattributes")?;
    for op in ops {
        match op {
            CommitOp::Add { path, content: Content::Blob { oid, .. } } if path == ".gitattributes" => {
                text = Some(repo.find_blob(*oid)?.content().to_vec());
            }
            CommitOp::DeleteFile { path } if path == ".gitattributes" => text = None,
            _ => {}
        }
    }
    Ok(String::from_utf8_lossy(&text.unwrap_or_default()).into_owned())
}

/// Resolves where a commit to `rev` goes; tags and commit ids are not writable.
pub fn target_for(repo: &Repository, rev: &str, create_pr: bool) -> ApiResult<Target> {
    let refname = if rev.starts_with("refs/pr/") || rev.starts_with("refs/heads/") { rev.to_string() } else { format!("refs/heads/{rev}") };
    if repo.find_reference(&refname).is_err() {
        if git::resolve_revision(repo, rev).is_some() {
            return Err(ApiError::bad_request(format!("cannot commit to {rev:?}: only branches can receive commits")));
        }
        return Err(ApiError::revision_not_found(rev));
    }
    Ok(if create_pr { Target::NewPullRequest { from: refname } } else { Target::Ref(refname) })
}

/// Applies the operations on top of the target's head and moves the ref. Blocking.
fn commit_blocking(
    stored: &std::collections::HashMap<Oid, HeldObject>,
    repo: &Repository,
    target: &Target,
    header: &CommitHeader,
    ops: &[CommitOp],
    sig: &Signature,
) -> ApiResult<CommitOutcome> {
    let source_ref = match target {
        Target::Ref(r) => r.clone(),
        Target::NewPullRequest { from } => from.clone(),
    };
    let head = git::branch_head(repo, &source_ref).ok_or_else(|| ApiError::revision_not_found(&source_ref))?;
    if let Some(parent) = &header.parent_commit {
        if !head.to_string().starts_with(&parent.to_ascii_lowercase()) {
            return Err(ApiError::new(
                axum::http::StatusCode::PRECONDITION_FAILED,
                format!("parentCommit {parent} is not the head of {source_ref} ({head}); pull the latest revision and retry"),
            ));
        }
    }
    let base_commit = repo.find_commit(head)?;
    let rules_text = final_attributes(repo, head, ops)?;
    let rules = LfsRules::parse(&rules_text);
    let mut tree_ops = Vec::with_capacity(ops.len() + 1);
    let mut untracked_lfs: Vec<String> = Vec::new();
    for op in ops {
        tree_ops.push(match op {
            CommitOp::Add { path, content } => {
                let blob = match content {
                    // Inline content that the attributes route to LFS is stored as LFS, as
                    // hf-hub 1.0 (which inlines everything when Xet is off) relies on.
                    Content::Blob { oid, size } if *size > 0 && rules.is_lfs(path) => {
                        // Stored by `store_lfs_routed` before this section (under the same lock,
                        // so the attributes it read are these).
                        let held = stored.get(oid).ok_or_else(|| ApiError::internal(format!("{path}: LFS content was not stored")))?;
                        repo.blob(LfsPointer { oid: held.oid.clone(), size: held.size }.encode().as_bytes())?
                    }
                    Content::Blob { oid, .. } => *oid,
                    Content::Lfs(obj) => {
                        // Keep git clients consistent: an LFS file no rule tracks gets its own rule.
                        if !rules.is_lfs(path) && !untracked_lfs.contains(path) {
                            untracked_lfs.push(path.clone());
                        }
                        repo.blob(LfsPointer { oid: obj.oid.clone(), size: obj.size }.encode().as_bytes())?
                    }
                };
                TreeOp::Put { path: path.clone(), blob, mode: FileMode::Blob }
            }
            CommitOp::DeleteFile { path } => TreeOp::DeleteFile { path: path.clone() },
            CommitOp::DeleteFolder { path } => TreeOp::DeleteFolder { path: path.clone() },
        });
    }
    if !untracked_lfs.is_empty() {
        let mut text = rules_text;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for p in &untracked_lfs {
            text.push_str(&exact_lfs_rule(p));
        }
        tree_ops.push(TreeOp::Put { path: ".gitattributes".into(), blob: repo.blob(text.as_bytes())?, mode: FileMode::Blob });
    }
    let tree = git::apply_ops(repo, Some(base_commit.tree_id()), tree_ops).map_err(|e| match &e {
        TreeError::MissingFile(p) | TreeError::MissingFolder(p) => {
            let mut err = ApiError::entry_not_found(p, &head.to_string());
            err.message = e.to_string();
            err
        }
        TreeError::Conflict(_) => ApiError::bad_request(e.to_string()),
        TreeError::Git(g) => ApiError::internal(g),
    })?;
    let tree = repo.find_tree(tree)?;
    let message = if header.description.trim().is_empty() {
        header.summary.trim().to_string()
    } else {
        format!("{}\n\n{}", header.summary.trim(), header.description.trim())
    };
    let commit = repo.commit(None, sig, sig, &message, &tree, &[&base_commit])?;
    let log_message = format!("commit: {}", header.summary.trim());
    let pr_number = match target {
        Target::Ref(r) => {
            // Compare-and-swap: refuses if another writer (another process too) moved the ref.
            repo.reference_matching(r, commit, true, head, &log_message).map_err(|e| {
                if e.code() == git2::ErrorCode::Modified || e.code() == git2::ErrorCode::Locked {
                    ApiError::conflict(format!("{r} moved while committing; retry"))
                } else {
                    ApiError::internal(e)
                }
            })?;
            None
        }
        Target::NewPullRequest { .. } => {
            let mut n = git::next_pr_number(repo)?;
            loop {
                let name = format!("refs/pr/{n}");
                match repo.reference(&name, commit, false, &log_message) {
                    Ok(_) => break Some(n),
                    Err(e) if e.code() == git2::ErrorCode::Exists => n += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    };
    Ok(CommitOutcome { commit, pr_number })
}

/// Inline files that the commit's final `.gitattributes` routes to LFS (hf-hub 1.0 inlines
/// everything when Xet is off) are stored as LFS objects first, one at a time, from the async
/// side: the git work that follows then never waits on storage from a blocking thread. Each is
/// recorded in the repo before any ref can point at its pointer. Called under the repo lock.
async fn store_lfs_routed(
    state: &AppState,
    repo_id: &str,
    rev: &str,
    create_pr: bool,
    ops: Vec<CommitOp>,
) -> ApiResult<(Vec<CommitOp>, std::collections::HashMap<Oid, HeldObject>)> {
    let rev = rev.to_string();
    let (ops, routed) = state
        .with_git(repo_id, move |g| {
            let source = match target_for(g, &rev, create_pr)? {
                Target::Ref(r) => r,
                Target::NewPullRequest { from } => from,
            };
            let head = git::branch_head(g, &source).ok_or_else(|| ApiError::revision_not_found(&source))?;
            let rules = LfsRules::parse(&final_attributes(g, head, &ops)?);
            let mut routed: Vec<Oid> = Vec::new();
            for op in &ops {
                if let CommitOp::Add { path, content: Content::Blob { oid, size } } = op {
                    if *size > 0 && rules.is_lfs(path) && !routed.contains(oid) {
                        routed.push(*oid);
                    }
                }
            }
            Ok((ops, routed))
        })
        .await?;
    let mut stored = std::collections::HashMap::new();
    for blob in routed {
        let data = state.with_git(repo_id, move |g| Ok(Bytes::copy_from_slice(g.find_blob(blob)?.content()))).await?;
        let (size, oid) = state.storage.put_content(data).await?;
        state.db.record_lfs_object(&oid, size).await?;
        let held = HeldObject { oid, size, xet_hash: None };
        content::record(state, repo_id, &held).await?;
        stored.insert(blob, held);
    }
    Ok((ops, stored))
}

/// Commits `ops` to `rev` as the caller; serialized per repo.
#[tracing::instrument(skip_all, fields(repo = %repo.id, rev = %rev, ops = ops.len(), create_pr))]
pub async fn commit(
    state: &AppState,
    repo: &RepoRow,
    rev: &str,
    create_pr: bool,
    header: CommitHeader,
    ops: Vec<CommitOp>,
    author: Author,
) -> ApiResult<CommitOutcome> {
    let rev = rev.to_string();
    state
        .locked(&repo.id, async {
            // The repo holds what it references before any ref can point at it.
            for op in &ops {
                if let CommitOp::Add { content: Content::Lfs(obj), .. } = op {
                    content::record(state, &repo.id, obj).await?;
                }
            }
            let (ops, stored) = store_lfs_routed(state, &repo.id, &rev, create_pr, ops).await?;
            let outcome = state
                .with_git(&repo.id, move |g| {
                    let target = target_for(g, &rev, create_pr)?;
                    commit_blocking(&stored, g, &target, &header, &ops, &author.signature()?)
                })
                .await?;
            crate::repos::record_head(state, &repo.id).await?;
            Ok(outcome)
        })
        .await
}

/// Replaces a branch's history with one commit holding its current tree.
#[tracing::instrument(skip_all, fields(repo = %repo.id, branch = %branch))]
pub async fn super_squash(state: &AppState, repo: &RepoRow, branch: &str, message: &str, author: Author) -> ApiResult<Oid> {
    let branch = branch.to_string();
    let message = message.to_string();
    state
        .locked(&repo.id, async {
            let commit = state
                .with_git(&repo.id, move |g| {
                    let refname = format!("refs/heads/{branch}");
                    let Some(head) = git::branch_head(g, &refname) else {
                        if git::resolve_revision(g, &branch).is_some() {
                            return Err(ApiError::bad_request("only branches can be squashed"));
                        }
                        return Err(ApiError::revision_not_found(&branch));
                    };
                    let tree = g.find_commit(head)?.tree()?;
                    let sig = author.signature()?;
                    let commit = g.commit(None, &sig, &sig, &message, &tree, &[])?;
                    g.reference_matching(&refname, commit, true, head, "super-squash")
                        .map_err(|_| ApiError::conflict(format!("{refname} moved while squashing; retry")))?;
                    Ok(commit)
                })
                .await?;
            crate::repos::record_head(state, &repo.id).await?;
            Ok(commit)
        })
        .await
}
