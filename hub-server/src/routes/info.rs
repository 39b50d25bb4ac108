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
use serde_json::{json, Map, Value};
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
fn entry_json(entry: &Entry, last_commit: Option<&CommitInfo>, xet: &HashMap<String, String>) -> Value {
    let mut v = match entry {
        Entry::Dir { path, tree } => json!({ "type": "directory", "oid": tree.to_string(), "size": 0, "path": path }),
        Entry::File { path, blob, size, lfs } => {
            let mut v = json!({ "type": "file", "oid": blob.to_string(), "size": size, "path": path });
            if let Some((pointer, pointer_size)) = lfs {
                v["lfs"] = json!({ "oid": pointer.oid, "size": pointer.size, "pointerSize": pointer_size });
                // huggingface_hub skips the HEAD of a file whose cached tree entry has this.
                if let Some(hash) = xet.get(&pointer.oid) {
                    v["xetHash"] = json!(hash);
                }
            }
            v
        }
    };
    if let Some(c) = last_commit {
        v["lastCommit"] = json!({ "id": c.id, "title": c.title, "date": format_time(c.time_ms) });
    }
    v
}

fn sibling_json(entry: &Entry, blobs: bool) -> Option<Value> {
    let Entry::File { path, blob, size, lfs } = entry else { return None };
    if !blobs {
        return Some(json!({ "rfilename": path }));
    }
    let mut v = json!({ "rfilename": path, "size": size, "blobId": blob.to_string() });
    if let Some((pointer, pointer_size)) = lfs {
        v["lfs"] = json!({ "sha256": pointer.oid, "size": pointer.size, "pointerSize": pointer_size });
    }
    Some(v)
}

/// Parameter counts of the safetensors files in a revision (remembered per commit).
async fn safetensors_summary(state: &AppState, repo_id: &str, snap: &browse::Snapshot) -> ApiResult<Option<Value>> {
    let key = (repo_id.to_string(), snap.commit);
    state.cache.remember(&state.cache.safetensors, key, count_safetensors(state, repo_id, &snap.files)).await
}

async fn count_safetensors(state: &AppState, repo_id: &str, files: &[Entry]) -> ApiResult<Option<Value>> {
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
    Ok(any.then(|| json!({ "parameters": totals, "total": totals.values().sum::<u64>() })))
}

/// The `expand` values of a query (`expand=a&expand=b`, also `expand[]=`).
fn expand_list(q: &QueryPairs) -> Vec<String> {
    q.all("expand").into_iter().chain(q.all("expand[]")).flat_map(|v| v.split(',')).map(str::to_string).collect()
}

fn base_fields(row: &RepoRow) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("_id".into(), json!(row.id));
    m.insert("id".into(), json!(row.name.id()));
    m.insert("author".into(), json!(row.name.namespace));
    m.insert("private".into(), json!(row.private));
    m.insert("gated".into(), json!(false));
    m.insert("disabled".into(), json!(false));
    m.insert("downloads".into(), json!(row.downloads));
    m.insert("likes".into(), json!(row.likes));
    m.insert("createdAt".into(), json!(format_time(row.created_at)));
    m.insert("lastModified".into(), json!(format_time(row.last_modified)));
    m
}

/// Keeps only the requested properties (plus the ids) when `expand` was given.
fn apply_expand(mut m: Map<String, Value>, expand: &[String]) -> Value {
    if !expand.is_empty() {
        m.retain(|k, _| k == "id" || k == "_id" || expand.iter().any(|e| e == k));
    }
    Value::Object(m)
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

async fn info_body(state: &AppState, row: &RepoRow, commit: git2::Oid, q: &QueryPairs) -> ApiResult<Bytes> {
    let snap = browse::snapshot(state, row, &commit.to_string()).await?;
    let expand = expand_list(q);
    let wants = |k: &str| expand.is_empty() || expand.iter().any(|e| e == k);
    let blobs = q.flag("blobs");
    let meta = snap.card.clone();
    let mut m = base_fields(row);
    m.insert("sha".into(), json!(snap.commit.to_string()));
    m.insert("tags".into(), json!(meta.tags));
    m.insert("cardData".into(), meta.card_data.clone().unwrap_or_else(|| json!({})));
    m.insert("siblings".into(), json!(snap.files.iter().filter_map(|e| sibling_json(e, blobs)).collect::<Vec<_>>()));
    if wants("usedStorage") {
        // What the repo's content occupies on the hub, each LFS object and xorb counted once, plus
        // the git objects of its small files at this revision.
        let small: u64 = snap.files.iter().map(|e| if let Entry::File { size, lfs: None, .. } = e { *size } else { 0 }).sum();
        m.insert("usedStorage".into(), json!(small + crate::content::used_storage(state, &row.id).await?));
    }
    if row.name.repo_type == RepoType::Model {
        m.insert("library_name".into(), json!(meta.library_name));
        m.insert("pipeline_tag".into(), json!(meta.pipeline_tag));
        m.insert("spaces".into(), json!([]));
        if wants("safetensors") {
            if let Some(st) = safetensors_summary(state, &row.id, &snap).await? {
                m.insert("safetensors".into(), st);
            }
        }
    }
    if meta.card_data.is_none() {
        m.remove("cardData");
    }
    Ok(Bytes::from(serde_json::to_vec(&apply_expand(m, &expand)).map_err(|e| ApiError::internal(e.to_string()))?))
}

pub async fn auth_check(State(state): State<AppState>, caller: Caller, path: RepoPath) -> ApiResult<Json<Value>> {
    find_readable(&state, &caller, &path.name, &path.uri).await?;
    Ok(Json(json!({})))
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
            return Ok(Json(json!([])).into_response());
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
    let mut m = base_fields(row);
    m.insert("tags".into(), json!(row.tags));
    if row.name.repo_type == RepoType::Model {
        m.insert("pipeline_tag".into(), json!(row.pipeline_tag));
        m.insert("library_name".into(), json!(row.library_name));
    }
    if q.flag("cardData") || wants("cardData") {
        m.insert("cardData".into(), row.card_data.clone().unwrap_or_else(|| json!({})));
    }
    if full || wants("sha") || wants("siblings") {
        if let Some(sha) = &row.sha {
            m.insert("sha".into(), json!(sha));
            let files = browse::files_at(state, row, sha).await;
            m.insert("siblings".into(), json!(files.iter().filter_map(|e| sibling_json(e, false)).collect::<Vec<_>>()));
        }
    }
    apply_expand(m, expand)
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
    let items: Vec<Value> = entries.iter().zip(&commits).map(|(e, c)| entry_json(e, c.as_ref(), &xet)).collect();
    let mut resp = Json(Value::Array(items)).into_response();
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
) -> ApiResult<Json<Value>> {
    let row = find_readable(&state, &caller, &path.name, &path.uri).await?;
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    let (paths, expand) = if is_json {
        let v: Value = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        let paths = v
            .get("paths")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad_request("\"paths\" must be a list of strings"))?
            .iter()
            .map(|p| p.as_str().map(str::to_string).ok_or_else(|| ApiError::bad_request("\"paths\" must be a list of strings")))
            .collect::<ApiResult<Vec<_>>>()?;
        (paths, v.get("expand").and_then(Value::as_bool).unwrap_or(false))
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
    Ok(Json(Value::Array(entries.iter().zip(&commits).map(|(e, c)| entry_json(e, c.as_ref(), &xet)).collect())))
}
