//! Routes under a repo's web path, parsed by hand because a repo may sit under a `datasets/` or
//! `spaces/` prefix and its file paths are free-form: `/{prefix}{ns}/{name}/resolve/{rev}/{path}`
//! and the Git LFS endpoints under `/{prefix}{ns}/{name}.git/info/lfs/`.

use super::range::{range_response, RangeAnswer};
use crate::app::AppState;
use crate::auth::{authenticate, Caller};
use crate::content::{self, HeldObject};
use crate::db::{RepoRow, Role};
use crate::error::{ApiError, ApiResult};
use crate::git::{self, Entry};
use crate::lfs::{self, BatchRequest, VerifyTarget};
use crate::names::{RepoName, RepoType};
use crate::repos::{find_readable, find_with_role};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use serde_json::json;

pub async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    match route(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn decode(s: &str) -> ApiResult<String> {
    percent_decode_str(s).decode_utf8().map(|s| s.into_owned()).map_err(|_| ApiError::bad_request("path is not valid UTF-8"))
}

async fn route(state: &AppState, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs[0] == "api" {
        // e.g. a single-segment id (`/api/models/gpt2`): no such repo here.
        if segs.len() >= 3 && crate::names::repo_type_from_plural(segs[1]).is_some() {
            return Err(ApiError::repo_not_found(true));
        }
        return Err(ApiError::not_found(format!("no API route {path}")));
    }
    let (repo_type, rest) = match segs[0] {
        "datasets" => (RepoType::Dataset, &segs[1..]),
        "spaces" => (RepoType::Space, &segs[1..]),
        _ => (RepoType::Model, &segs[..]),
    };
    if rest.len() == 1 && segs.len() == 1 && !rest[0].is_empty() && parts.method == Method::GET {
        // `/{name}`: a user's or organisation's page.
        let session = parts.extensions.get::<tower_sessions::Session>().cloned();
        let (caller, nav) = match super::web_accounts::context(state, &parts.headers, session.as_ref()).await {
            Ok(c) => c,
            Err(e) => return Ok(super::web::error_page(e)),
        };
        let name = decode(rest[0])?;
        return Ok(super::web::profile(state, &caller, &nav, &name).await.unwrap_or_else(super::web::error_page));
    }
    if rest.len() < 2 || rest[1].is_empty() {
        return Err(ApiError::not_found(format!("no route {path}")));
    }
    let ns = rest[0];
    let name = rest[1].strip_suffix(".git").unwrap_or(rest[1]);
    let Ok(repo) = RepoName::new(repo_type, ns, name) else {
        return Err(ApiError::repo_not_found(true));
    };
    let auth = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let method = parts.method.clone();
    match (&rest[2..], &method) {
        (["resolve", rev, file @ ..], &Method::GET | &Method::HEAD) if !file.is_empty() => {
            let caller = authenticate(state, auth).await?;
            let rev = decode(rev)?;
            let file = decode(&file.join("/"))?;
            resolve(state, &caller, &repo, &parts.uri, &method, &parts.headers, &rev, &file).await
        }
        (["info", "lfs", "objects", "batch"], &Method::POST) => {
            let caller = authenticate(state, auth).await.map_err(lfs_challenge)?;
            batch(state, &caller, &repo, &parts.uri, &parts.headers, body).await.map_err(lfs_challenge)
        }
        (["info", "refs"], &Method::GET) => {
            let service = crate::extract::QueryPairs::parse(parts.uri.query()).get("service").unwrap_or("").to_string();
            let caller = authenticate(state, auth).await.map_err(git_challenge)?;
            let service = match service.as_str() {
                "git-upload-pack" => GitService::UploadPack,
                "git-receive-pack" => GitService::ReceivePack,
                _ => return Err(ApiError::forbidden("only the smart HTTP protocol is served; use git 1.6.6 or newer")),
            };
            git_service(state, &caller, &repo, &parts, body, service, true).await.map_err(git_challenge)
        }
        (["git-upload-pack"], &Method::POST) => {
            let caller = authenticate(state, auth).await.map_err(git_challenge)?;
            git_service(state, &caller, &repo, &parts, body, GitService::UploadPack, false).await.map_err(git_challenge)
        }
        (["git-receive-pack"], &Method::POST) => {
            let caller = authenticate(state, auth).await.map_err(git_challenge)?;
            git_service(state, &caller, &repo, &parts, body, GitService::ReceivePack, false).await.map_err(git_challenge)
        }
        (["info", "lfs", "objects", "verify"], &Method::POST) => {
            let caller = authenticate(state, auth).await.map_err(lfs_challenge)?;
            verify(state, &caller, &repo, &parts.uri, body).await.map_err(lfs_challenge)
        }
        (action @ (["like"] | ["upload"] | ["settings", _]), &Method::POST) => {
            let session = parts.extensions.get::<tower_sessions::Session>().cloned();
            let (caller, _) = match super::web_accounts::context(state, &parts.headers, session.as_ref()).await {
                Ok(c) => c,
                Err(e) => return Ok(super::web::error_page(e)),
            };
            let action: Vec<&str> = action.to_vec();
            let req = Request::from_parts(parts, body);
            Ok(super::web_repo_admin::post(state, &caller, &repo, &action, req).await.unwrap_or_else(super::web::error_page))
        }
        _ if method == Method::GET => {
            let session = parts.extensions.get::<tower_sessions::Session>().cloned();
            let (caller, nav) = match super::web_accounts::context(state, &parts.headers, session.as_ref()).await {
                Ok(c) => c,
                Err(e) => return Ok(super::web::error_page(e)),
            };
            Ok(web_page(state, &caller, &nav, &repo, &parts, &rest[2..]).await.unwrap_or_else(super::web::error_page))
        }
        _ => Err(ApiError::not_found(format!("no route {path}"))),
    }
}

/// The web pages under a repo's path.
async fn web_page(
    state: &AppState,
    caller: &Caller,
    nav: &super::web::Nav,
    repo: &RepoName,
    parts: &axum::http::request::Parts,
    rest: &[&str],
) -> ApiResult<Response> {
    use super::web;
    let uri = &parts.uri;
    let base = state.base_url(&parts.headers);
    match rest {
        [] => web::repo_page(state, caller, nav, repo, uri, &base).await,
        ["tree", rev, dir @ ..] => web::tree(state, caller, nav, repo, uri, &decode(rev)?, &decode(&dir.join("/"))?).await,
        ["tree-select"] => {
            // The revision selector without script: a GET form that lands here.
            let q = crate::extract::QueryPairs::parse(uri.query());
            let rev = q.get("rev").unwrap_or("main");
            let dir = q.get("path").unwrap_or("").trim_matches('/');
            crate::names::validate_repo_path(dir).or_else(|e| if dir.is_empty() { Ok("") } else { Err(e) })?;
            // Each segment encoded: the Location header carries no raw control characters.
            let dir: Vec<String> =
                dir.split('/').map(|s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()).collect();
            let to = format!(
                "/{}/tree/{}/{}",
                repo.web_path(),
                percent_encoding::utf8_percent_encode(rev, percent_encoding::NON_ALPHANUMERIC),
                dir.join("/")
            );
            Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
        }
        ["blob", rev, file @ ..] if !file.is_empty() => {
            web::blob(state, caller, nav, repo, uri, &decode(rev)?, &decode(&file.join("/"))?).await
        }
        ["commits", rev] => web::commits(state, caller, nav, repo, uri, &decode(rev)?).await,
        ["commit", sha] => web::commit(state, caller, nav, repo, uri, &decode(sha)?).await,
        ["settings"] => super::web_repo_admin::settings_page(state, caller, nav, repo, uri).await,
        ["upload"] => super::web_repo_admin::upload_page(state, caller, nav, repo, uri).await,
        _ => Err(ApiError::not_found("no such page")),
    }
}

/// git-lfs asks its credential helper only when a 401 carries this challenge.
fn lfs_challenge(e: ApiError) -> ApiError {
    if e.status == StatusCode::UNAUTHORIZED {
        e.with_header(HeaderName::from_static("lfs-authenticate"), "Basic realm=\"hub\"")
            .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"hub\"")
    } else {
        e
    }
}

use axum::http::HeaderName;

/// git sends credentials only after a 401 with a Basic challenge.
fn git_challenge(e: ApiError) -> ApiError {
    if e.status == StatusCode::UNAUTHORIZED {
        e.with_header(header::WWW_AUTHENTICATE, "Basic realm=\"hub\"")
    } else {
        e
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GitService {
    UploadPack,
    ReceivePack,
}

/// Smart HTTP: `info/refs`, `git-upload-pack` (clone, fetch) and `git-receive-pack` (push).
async fn git_service(
    state: &AppState,
    caller: &Caller,
    name: &RepoName,
    parts: &axum::http::request::Parts,
    body: Body,
    service: GitService,
    advertisement: bool,
) -> ApiResult<Response> {
    let row = match service {
        GitService::UploadPack => find_readable(state, caller, name, &parts.uri).await?,
        GitService::ReceivePack => {
            if !caller.is_authenticated() {
                return Err(ApiError::unauthorized("pushing needs credentials: any username, an access token as password"));
            }
            find_with_role(state, caller, name, &parts.uri, Role::Write).await?
        }
    };
    let header_str = |h: header::HeaderName| parts.headers.get(h).and_then(|v| v.to_str().ok());
    let rel = state.git.relative_path(&row.id);
    let path_info = if advertisement {
        format!("/{rel}/info/refs")
    } else if service == GitService::UploadPack {
        format!("/{rel}/git-upload-pack")
    } else {
        format!("/{rel}/git-receive-pack")
    };
    let req = crate::git::smart_http::CgiRequest {
        method: parts.method.as_str(),
        path_info,
        query: parts.uri.query().unwrap_or(""),
        content_type: header_str(header::CONTENT_TYPE),
        content_encoding: header_str(header::CONTENT_ENCODING),
        content_length: header_str(header::CONTENT_LENGTH),
        git_protocol: parts.headers.get("git-protocol").and_then(|v| v.to_str().ok()),
        remote_user: caller.name(),
        env: vec![
            (crate::hooks::HOOK_BIN_ENV, state.hook_bin().display().to_string()),
            (crate::hooks::HOOK_DATABASE_ENV, state.settings.database_url()),
            (crate::hooks::HOOK_REPO_ENV, row.id.clone()),
            (crate::hooks::HOOK_NAMESPACES_ENV, caller.visible_namespaces().join(",")),
        ],
        config: vec![("core.hooksPath", state.hooks_dir().display().to_string())],
    };
    let root = state.git.root().to_path_buf();
    if service == GitService::ReceivePack && !advertisement {
        // A push moves refs: serialize it with API commits, then record the new head.
        return state
            .locked(&row.id, async {
                let resp = crate::git::smart_http::run(&root, req, body, true).await?;
                after_push(state, &row).await?;
                Ok(resp)
            })
            .await;
    }
    crate::git::smart_http::run(&root, req, body, false).await
}

/// Re-reads the default branch after a push, so the API reflects it at once.
async fn after_push(state: &AppState, row: &RepoRow) -> ApiResult<()> {
    let head = state
        .with_git(&row.id, |g| {
            let Some(head) = git::branch_head(g, &git::default_branch(g)) else { return Ok(None) };
            let readme = git::read_file(g, head, "README.md")?;
            Ok(Some((head, crate::card::card_meta(readme.as_deref().map(String::from_utf8_lossy).as_deref()))))
        })
        .await?;
    match head {
        Some((head, card)) => state.db.record_head(&row.id, &head.to_string(), &card).await?,
        None => state.db.touch_repo(&row.id).await?,
    }
    Ok(())
}

/// Streams held content (or a range of it): an LFS object, or a Xet file reassembled.
pub async fn serve_content(state: &AppState, obj: &HeldObject, method: &Method, headers: &HeaderMap) -> ApiResult<Response> {
    let RangeAnswer { status, range, headers: h } = range_response(headers, obj.size)?;
    let body =
        if method == Method::HEAD || obj.size == 0 { Body::empty() } else { Body::from_stream(content::read(state, obj, range).await?) };
    let mut resp = (status, body).into_response();
    resp.headers_mut().extend(h);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(resp)
}

fn quoted(v: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{v}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "json" => "application/json",
        "md" | "txt" | "csv" | "py" | "yaml" | "yml" | "gitattributes" | "gitignore" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET|HEAD /{repo}/resolve/{rev}/{path}`: the file's bytes with the headers clients cache by.
#[allow(clippy::too_many_arguments)]
async fn resolve(
    state: &AppState,
    caller: &Caller,
    name: &RepoName,
    uri: &Uri,
    method: &Method,
    headers: &HeaderMap,
    rev: &str,
    file: &str,
) -> ApiResult<Response> {
    let row: RepoRow = find_readable(state, caller, name, uri).await?;
    crate::names::validate_repo_path(file)?;
    caller.check_revision(rev)?;
    let (rev_s, file_s) = (rev.to_string(), file.to_string());
    let want_body = method == Method::GET;
    let (commit, entry, content) = state
        .with_git(&row.id, move |g| {
            let commit = git::resolve_revision(g, &rev_s).ok_or_else(|| ApiError::revision_not_found(&rev_s))?;
            let entry = match git::entry_at(g, commit, &file_s)? {
                Some(e @ Entry::File { .. }) => e,
                _ => return Err(ApiError::entry_not_found(&file_s, &commit.to_string())),
            };
            let content = match &entry {
                Entry::File { blob, lfs: None, .. } if want_body => Some(Bytes::copy_from_slice(g.find_blob(*blob)?.content())),
                _ => None,
            };
            Ok((commit, entry, content))
        })
        .await?;
    let Entry::File { blob, size, lfs, .. } = entry else { unreachable!("only files are returned above") };
    if method == Method::GET && (row.name.repo_type != RepoType::Model || file == "config.json") {
        let (db, id) = (state.db.clone(), row.id.clone());
        tokio::spawn(async move {
            if let Err(e) = db.count_download(&id).await {
                tracing::warn!(error = %e, "could not count a download");
            }
        });
    }
    let mut resp = match (&lfs, content) {
        (Some((pointer, _)), _) => {
            // Only content this repo holds is served; anything else answers as not stored.
            let obj = content::held(state, &row.id, &pointer.oid)
                .await?
                .filter(|o| o.size == pointer.size)
                .ok_or_else(|| ApiError::not_found(format!("the content of {file} ({}) is not stored on this hub", pointer.oid)))?;
            let mut r = serve_content(state, &obj, method, headers).await?;
            let h = r.headers_mut();
            h.insert(header::ETAG, quoted(&pointer.oid));
            h.insert("x-linked-etag", quoted(&pointer.oid));
            h.insert("x-linked-size", HeaderValue::from(pointer.size));
            if let Some(xet) = &obj.xet_hash {
                // huggingface_hub downloads through Xet when both are present (absolute URL).
                let url =
                    format!("{}/api/{}/{}/xet-read-token/{commit}", state.base_url(headers), row.name.repo_type.plural(), row.name.id());
                if let (Ok(hash), Ok(link)) = (HeaderValue::from_str(xet), HeaderValue::from_str(&format!("<{url}>; rel=\"xet-auth\""))) {
                    h.insert("x-xet-hash", hash);
                    h.insert(header::LINK, link);
                }
            }
            r
        }
        (None, content) => {
            let RangeAnswer { status, range, headers: h } = range_response(headers, size)?;
            let body = match (content, range) {
                (Some(c), Some((a, b))) => Body::from(c.slice(a as usize..b as usize + 1)),
                (Some(c), None) => Body::from(c),
                (None, _) => Body::empty(),
            };
            let mut r = (status, body).into_response();
            r.headers_mut().extend(h);
            r.headers_mut().insert(header::ETAG, quoted(&blob.to_string()));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(file)));
            r
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&commit.to_string()) {
        h.insert("x-repo-commit", v);
    }
    Ok(resp)
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> ApiResult<T> {
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.map_err(|_| ApiError::payload_too_large("request body too large"))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn lfs_json(v: serde_json::Value) -> Response {
    let mut r = axum::Json(v).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.git-lfs+json"));
    r
}

/// `POST /{repo}.git/info/lfs/objects/batch`.
async fn batch(state: &AppState, caller: &Caller, name: &RepoName, uri: &Uri, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let req: BatchRequest = read_json(body).await?;
    if req.hash_algo.as_deref().is_some_and(|a| a != "sha256") {
        return Err(ApiError::new(StatusCode::CONFLICT, "only the sha256 hash algorithm is supported"));
    }
    if req.objects.len() > 10_000 {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "at most 10000 objects per batch"));
    }
    let base = state.base_url(headers);
    match req.operation.as_str() {
        "upload" => {
            if !caller.is_authenticated() {
                return Err(ApiError::unauthorized("Uploading needs credentials: a write access token"));
            }
            let row = find_with_role(state, caller, name, uri, Role::Write).await?;
            let verify = VerifyTarget {
                href: format!("{base}/{}.git/info/lfs/objects/verify", row.name.web_path()),
                authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string),
            };
            Ok(lfs_json(lfs::upload_batch(state, &row.id, &base, &req, &verify).await?))
        }
        "download" => {
            let row = find_readable(state, caller, name, uri).await?;
            Ok(lfs_json(lfs::download_batch(state, &row.id, &base, &req).await?))
        }
        other => Err(ApiError::bad_request(format!("unknown LFS operation {other:?}: expected upload or download"))),
    }
}

#[derive(serde::Deserialize)]
struct VerifyBody {
    oid: String,
    size: u64,
}

/// `POST /{repo}.git/info/lfs/objects/verify`: 200 once this repo holds the object at that size.
async fn verify(state: &AppState, caller: &Caller, name: &RepoName, uri: &Uri, body: Body) -> ApiResult<Response> {
    let row = find_with_role(state, caller, name, uri, Role::Write).await?;
    let req: VerifyBody = read_json(body).await?;
    let oid = req.oid.to_ascii_lowercase();
    match content::held(state, &row.id, &oid).await? {
        Some(obj) if obj.size == req.size => Ok(lfs_json(json!({ "message": "ok" }))),
        Some(obj) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("object {} is stored with {} bytes, not {}", req.oid, obj.size, req.size),
        )),
        None => Err(ApiError::not_found(format!("object {} is not stored", req.oid))),
    }
}
