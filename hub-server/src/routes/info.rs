//! Repo info, listing, tree and paths-info.

use super::{format_time, next_link};
use crate::app::AppState;
use crate::auth::Caller;
use crate::browse::{self, DirPage, DirQuery};
use crate::browse::{CommitInfo, Entry};
use crate::db::{RepoQuery, RepoRow, RepoSort};
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryPairs, RepoPath};
use crate::names::{validate_name, RepoType};
use crate::repos::find_readable;
use crate::safetensors;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_client::types::{Empty, PathsInfoRequest};
use hub_client::types::{EntryKind, LastCommit, RepoInfo, SafetensorsInfo, Sibling, SiblingLfs, TreeEntry, TreeLfs};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The Xet file hashes of the Xet-backed LFS files among `entries` (by LFS oid).
async fn xet_hashes(state: &AppState, repo_id: &str, entries: &[Entry]) -> ApiResult<HashMap<String, String>> {
    let oids: Vec<String> =
        entries.iter().filter_map(|e| if let Entry::File { lfs: Some((p, _)), .. } = e { Some(p.oid.clone()) } else { None }).collect();
    if oids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(state.db.held_objects(repo_id, &oids).await?.into_iter().filter_map(|o| Some((o.oid, o.xet_hash?))).collect())
}

/// A tree entry as the tree and paths-info routes return it.
fn tree_entry(entry: &Entry, last_commit: Option<&CommitInfo>, xet: &HashMap<String, String>) -> TreeEntry {
    let last_commit = last_commit.map(|c| LastCommit { id: c.id.clone(), title: c.title.clone(), date: format_time(c.time_ms) });
    match entry {
        Entry::Dir { path, tree } => TreeEntry {
            kind: EntryKind::Directory,
            oid: tree.to_string(),
            size: 0,
            path: path.clone(),
            lfs: None,
            xet_hash: None,
            last_commit,
        },
        Entry::File { path, blob, size, lfs } => TreeEntry {
            kind: EntryKind::File,
            oid: blob.to_string(),
            size: *size,
            path: path.clone(),
            lfs: lfs.as_ref().map(|(p, pointer_size)| TreeLfs { oid: p.oid.clone(), size: p.size, pointer_size: Some(*pointer_size) }),
            // huggingface_hub skips the HEAD of a file whose cached tree entry has this.
            xet_hash: lfs.as_ref().and_then(|(p, _)| xet.get(&p.oid).cloned()),
            last_commit,
        },
    }
}

fn sibling(entry: &Entry, blobs: bool) -> Option<Sibling> {
    let Entry::File { path, blob, size, lfs } = entry else { return None };
    if !blobs {
        return Some(Sibling { rfilename: path.clone(), ..Default::default() });
    }
    Some(Sibling {
        rfilename: path.clone(),
        size: Some(*size),
        blob_id: Some(blob.to_string()),
        lfs: lfs.as_ref().map(|(p, pointer_size)| SiblingLfs { sha256: p.oid.clone(), size: p.size, pointer_size: Some(*pointer_size) }),
        xet_hash: None,
    })
}

/// Parameter counts of the safetensors files in a revision (remembered per commit).
async fn safetensors_summary(state: &AppState, repo_id: &str, snap: &browse::Snapshot) -> ApiResult<Option<SafetensorsInfo>> {
    let key = (repo_id.to_string(), snap.commit);
    state.cache.remember(&state.cache.safetensors, key, count_safetensors(state, repo_id, &snap.files)).await
}

async fn count_safetensors(state: &AppState, repo_id: &str, files: &[Entry]) -> ApiResult<Option<SafetensorsInfo>> {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut any = false;
    for entry in files {
        let Entry::File { path, lfs: Some((pointer, _)), .. } = entry else { continue };
        if !path.ends_with(".safetensors") {
            continue;
        }
        let Some(obj) = crate::content::held(state, repo_id, &pointer.oid).await? else { continue };
        if let Some(summary) = safetensors::summary(state, &obj).await? {
            any = true;
            for (dtype, n) in summary.parameters {
                *totals.entry(dtype).or_insert(0) += n;
            }
        }
    }
    Ok(any.then(|| SafetensorsInfo { total: totals.values().sum(), parameters: totals }))
}

/// The `expand` values of a query (`expand=a&expand=b`, also `expand[]=`).
fn expand_list(q: &QueryPairs) -> Vec<String> {
    q.all("expand").into_iter().chain(q.all("expand[]")).flat_map(|v| v.split(',')).map(str::to_string).collect()
}

/// What info and listings say of every repo.
fn base_info(row: &RepoRow) -> RepoInfo {
    RepoInfo {
        internal_id: Some(row.id.clone()),
        id: row.name.id(),
        author: Some(row.name.namespace.clone()),
        private: Some(row.private),
        gated: Some(Value::Bool(false)),
        disabled: Some(false),
        downloads: Some(row.downloads.max(0) as u64),
        likes: Some(row.likes.max(0) as u64),
        created_at: Some(format_time(row.created_at)),
        last_modified: Some(format_time(row.last_modified)),
        ..Default::default()
    }
}

/// Keeps only the requested properties (plus the ids) when `expand` was given.
fn apply_expand(info: &RepoInfo, expand: &[String]) -> Value {
    let mut v = serde_json::to_value(info).unwrap_or(Value::Null);
    if let (false, Some(m)) = (expand.is_empty(), v.as_object_mut()) {
        m.retain(|k, _| k == "id" || k == "_id" || expand.iter().any(|e| e == k));
    }
    v
}

/// `GET /api/{t}s/{ns}/{name}` and `…/revision/{rev}`.
pub async fn info(State(state): State<AppState>, caller: Caller, path: RepoPath, q: QueryPairs) -> ApiResult<Response> {
    let row = find_readable(&state, &caller, &path.name, &path.uri).await?;
    let rev = path.params.get("rev").cloned().unwrap_or_else(|| "main".to_string());
    caller.check_revision(&rev)?;
    let commit = browse::commit_of(&state, &row, &rev).await?;
    // The same for everyone who may see the repo: remembered per commit and query, under the
    // epoch (likes, privacy or a new upload change it).
    let key = (row.id.clone(), commit, path.uri.query().unwrap_or("").to_string());
    let body = state.cache.remember(&state.cache.info, key, info_body(&state, &row, commit, &q)).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

async fn info_body(state: &AppState, row: &RepoRow, commit: browse::CommitId, q: &QueryPairs) -> ApiResult<Bytes> {
    let snap = browse::snapshot(state, row, &commit.to_string()).await?;
    let expand = expand_list(q);
    let wants = |k: &str| expand.is_empty() || expand.iter().any(|e| e == k);
    let blobs = q.flag("blobs");
    let meta = &snap.card;
    let mut info = RepoInfo {
        sha: Some(snap.commit.to_string()),
        tags: Some(meta.tags.clone()),
        card_data: meta.card_data.clone(),
        siblings: Some(snap.files.iter().filter_map(|e| sibling(e, blobs)).collect()),
        ..base_info(row)
    };
    if wants("usedStorage") {
        // What the repo's content occupies on the hub, each LFS object and xorb counted once, plus
        // the git objects of its small files at this revision.
        let small: u64 = snap.files.iter().map(|e| if let Entry::File { size, lfs: None, .. } = e { *size } else { 0 }).sum();
        info.used_storage = Some(small + crate::content::used_storage(state, &row.id).await?);
    }
    if row.name.repo_type == RepoType::Model {
        info.library_name = Some(meta.library_name.clone());
        info.pipeline_tag = Some(meta.pipeline_tag.clone());
        info.spaces = Some(Vec::new());
        if wants("safetensors") {
            info.safetensors = safetensors_summary(state, &row.id, &snap).await?;
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&apply_expand(&info, &expand)).map_err(|e| ApiError::internal(e.to_string()))?))
}

pub async fn auth_check(State(state): State<AppState>, caller: Caller, path: RepoPath) -> ApiResult<Json<Empty>> {
    find_readable(&state, &caller, &path.name, &path.uri).await?;
    Ok(Json(Empty {}))
}

/// `GET /api/models` (datasets, spaces): search, author, filter, pipeline_tag, sort, limit.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(t): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    q: QueryPairs,
) -> ApiResult<Response> {
    let repo_type = crate::names::repo_type_from_plural(&t).ok_or_else(|| ApiError::not_found(format!("no route /api/{t}")))?;
    let ListParams { sort, ascending, limit, offset, author } = ListParams::parse(&q)?;
    if let Some(a) = &author {
        if validate_name("author", a).is_err() {
            return Ok(Json(Vec::<RepoInfo>::new()).into_response());
        }
    }
    let query = RepoQuery {
        repo_type,
        search: q.get("search").filter(|s| !s.is_empty()).map(str::to_string),
        author,
        tags: q.all("filter").into_iter().flat_map(|f| f.split(',')).filter(|f| !f.is_empty()).map(str::to_string).collect(),
        pipeline_tag: q.get("pipeline_tag").filter(|s| !s.is_empty()).map(str::to_string),
        sort,
        ascending,
        visible_namespaces: caller.visible_namespaces(),
        offset,
        limit,
    };
    let (rows, more) = state.db.list_repos(&query).await?;
    let expand = expand_list(&q);
    let full = q.flag("full");
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(listed_repo(&state, row, &q, &expand, full).await);
    }
    let mut resp = Json(Value::Array(items)).into_response();
    if more {
        let link = next_link(&state.base_url(&headers), &uri, "cursor", &(offset + limit).to_string());
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// A listing's sort, direction, page and author, as its query gives them.
struct ListParams {
    sort: RepoSort,
    ascending: bool,
    limit: i64,
    offset: i64,
    author: Option<String>,
}

impl ListParams {
    fn parse(q: &QueryPairs) -> ApiResult<ListParams> {
        let sort = match q.get("sort").unwrap_or("lastModified") {
            "lastModified" | "last_modified" => RepoSort::LastModified,
            "createdAt" | "created_at" => RepoSort::CreatedAt,
            "downloads" | "trendingScore" | "trending_score" | "downloadsAllTime" => RepoSort::Downloads,
            "likes" => RepoSort::Likes,
            "id" | "modelId" => RepoSort::Id,
            other => return Err(ApiError::bad_request(format!("unknown sort {other:?}"))),
        };
        let ascending = q.get("direction").is_some_and(|d| d == "1");
        let limit = q.number("limit")?.unwrap_or(1000).clamp(1, 1000) as i64;
        let offset =
            q.get("cursor").map(|c| c.parse::<i64>().map_err(|_| ApiError::bad_request("invalid cursor"))).transpose()?.unwrap_or(0).max(0);
        let author = q.get("author").filter(|a| !a.is_empty()).map(str::to_string);
        Ok(ListParams { sort, ascending, limit, offset, author })
    }
}

/// One repo of a listing, with the properties the query asks for.
async fn listed_repo(state: &AppState, row: &RepoRow, q: &QueryPairs, expand: &[String], full: bool) -> Value {
    let wants = |k: &str| expand.iter().any(|e| e == k);
    let mut info = RepoInfo { tags: Some(row.tags.clone()), ..base_info(row) };
    if row.name.repo_type == RepoType::Model {
        info.pipeline_tag = Some(row.pipeline_tag.clone());
        info.library_name = Some(row.library_name.clone());
    }
    if q.flag("cardData") || wants("cardData") {
        info.card_data = Some(row.card_data.clone().unwrap_or_else(|| Value::Object(Default::default())));
    }
    if full || wants("sha") || wants("siblings") {
        if let Some(sha) = &row.sha {
            info.sha = Some(sha.clone());
            let files = browse::files_at(state, row, sha).await;
            info.siblings = Some(files.iter().filter_map(|e| sibling(e, false)).collect());
        }
    }
    apply_expand(&info, expand)
}

/// `GET …/tree/{rev}[/{path}]`: one page of a directory listing, optionally recursive and with
/// each entry's last commit.
pub async fn tree(State(state): State<AppState>, caller: Caller, path: RepoPath, headers: HeaderMap, q: QueryPairs) -> ApiResult<Response> {
    let row = find_readable(&state, &caller, &path.name, &path.uri).await?;
    let rev = path.param("rev").to_string();
    caller.check_revision(&rev)?;
    let dir = path.param("path").trim_matches('/').to_string();
    if !dir.is_empty() {
        crate::names::validate_repo_path(&dir)?;
    }
    let recursive = q.flag("recursive");
    let expand = q.flag("expand");
    let page_size = q.number("limit")?.unwrap_or(if expand { 50 } else { 1000 }).clamp(1, if expand { 1000 } else { 10_000 }) as usize;
    let offset = q.get("cursor").map(|c| c.parse::<usize>().map_err(|_| ApiError::bad_request("invalid cursor"))).transpose()?.unwrap_or(0);
    let query = DirQuery { recursive, offset, limit: page_size, with_commits: expand, dirs_first: false };
    let DirPage { entries, last_commits: commits, more, .. } = browse::dir_page(&state, &row, &rev, &dir, query).await?;
    let xet = xet_hashes(&state, &row.id, &entries).await?;
    let items: Vec<TreeEntry> = entries.iter().zip(&commits).map(|(e, c)| tree_entry(e, c.as_ref(), &xet)).collect();
    let mut resp = Json(items).into_response();
    if more {
        let link = next_link(&state.base_url(&headers), &path.uri, "cursor", &(offset + page_size).to_string());
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// `POST …/paths-info/{rev}`: form-encoded from Python, JSON from hf-hub 1.0.
pub async fn paths_info(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<TreeEntry>>> {
    let row = find_readable(&state, &caller, &path.name, &path.uri).await?;
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    let (paths, expand) = if is_json {
        let req: PathsInfoRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body (expected {{\"paths\": [strings]}}): {e}")))?;
        (req.paths, req.expand.unwrap_or(false))
    } else {
        let q = QueryPairs::parse(Some(std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?));
        (q.all("paths").into_iter().map(str::to_string).collect(), q.flag("expand"))
    };
    if paths.len() > 10_000 {
        return Err(ApiError::bad_request("at most 10000 paths per request"));
    }
    let rev = path.param("rev").to_string();
    caller.check_revision(&rev)?;
    let (entries, commits) = browse::paths_info(&state, &row, &rev, paths, expand).await?;
    let xet = xet_hashes(&state, &row.id, &entries).await?;
    Ok(Json(entries.iter().zip(&commits).map(|(e, c)| tree_entry(e, c.as_ref(), &xet)).collect()))
}
