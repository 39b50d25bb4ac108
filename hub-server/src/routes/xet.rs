//! Xet: the hub's token routes (`xet-read-token`, `xet-write-token`) and the CAS API under
//! `{hub}/xet` (xorbs, shards, reconstructions, global dedup, signed xorb ranges).

use super::range::parse_range;
use crate::app::AppState;
use crate::auth::{caller_for_user, Caller};
use crate::db::{RepoRow, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryPairs, RepoPath};
use crate::repos::{find_readable, find_with_role};
use crate::storage::XetKey;
use crate::xet::{self, token::CasToken};
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hub_client::xet_types::{
    ChunkRange, FetchInfoV1, HttpRange, ReconstructionTerm, ReconstructionV1, ReconstructionV2, ShardUploadResponse, XetTokenInfo,
    XorbFetch, XorbRangeDescriptor, XorbUploadResponse,
};
use std::collections::HashMap;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The CAS base URL: on the hub's own origin, no trailing slash (the client appends `/v1/…`).
fn cas_url(state: &AppState, headers: &HeaderMap) -> String {
    format!("{}/xet", state.base_url(headers))
}

fn token_response(state: &AppState, headers: &HeaderMap, row: &RepoRow, caller: &Caller, write: bool) -> Response {
    let exp = now() + state.settings.xet_token_ttl as i64;
    let user_id = caller.user.as_ref().map(|u| u.account.id);
    let token = xet::token::mint(&state.secret, &CasToken { repo_id: row.id.clone(), write, user_id, exp });
    let info = XetTokenInfo { access_token: token, exp: exp as u64, cas_url: cas_url(state, headers) };
    // The Python side reads the headers, hf_xet's Rust side the body: send both.
    let mut resp = Json(&info).into_response();
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-xet-cas-url", info.cas_url.clone()),
        ("x-xet-access-token", info.access_token.clone()),
        ("x-xet-token-expiration", exp.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

/// `GET /api/{t}/{ns}/{name}/xet-read-token/{rev}`: anyone who can read the repo.
pub async fn read_token(State(state): State<AppState>, caller: Caller, path: RepoPath, headers: HeaderMap) -> ApiResult<Response> {
    let row = find_readable(&state, &caller, &path.name, &path.uri).await?;
    caller.check_revision(path.param("rev"))?;
    state.resolve(&row, path.param("rev")).await?;
    Ok(token_response(&state, &headers, &row, &caller, false))
}

/// `GET /api/{t}/{ns}/{name}/xet-write-token/{rev}[?create_pr=1]`: who can write the branch (or
/// open a pull request from it; huggingface_hub sends the revision `None` for that).
pub async fn write_token(
    State(state): State<AppState>,
    caller: Caller,
    path: RepoPath,
    headers: HeaderMap,
    q: QueryPairs,
) -> ApiResult<Response> {
    if !caller.is_authenticated() {
        return Err(ApiError::unauthorized("uploading needs a write access token"));
    }
    let row = find_with_role(&state, &caller, &path.name, &path.uri, Role::Write).await?;
    let rev = path.param("rev").to_string();
    if !(q.flag("create_pr") && rev == "None") {
        crate::browse::check_commit_target(&state, &row, &rev).await?;
    }
    Ok(token_response(&state, &headers, &row, &caller, true))
}

/// A request to the CAS with a valid Xet token.
pub struct CasCaller(pub CasToken);

impl FromRequestParts<AppState> for CasCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        match token.and_then(|t| xet::token::check(&state.secret, t)) {
            Some(t) => Ok(CasCaller(t)),
            None => Err(ApiError::unauthorized(
                "missing, invalid or expired Xet token: ask the hub's xet-read-token or xet-write-token route for one",
            )),
        }
    }
}

impl CasCaller {
    fn require_write(&self) -> ApiResult<()> {
        if self.0.write {
            Ok(())
        } else {
            Err(ApiError::forbidden("this Xet token is read-only; uploads need one from xet-write-token"))
        }
    }

    /// The token's repo, if it still exists and the token's user may still use it that way
    /// (a repo made private, or a membership revoked, takes effect at once).
    async fn repo(&self, state: &AppState) -> ApiResult<RepoRow> {
        let gone = || ApiError::repo_not_found(true);
        let row = state.db.find_repo_by_id(&self.0.repo_id).await?.ok_or_else(gone)?;
        let role = if self.0.write { Role::Write } else { Role::Read };
        let caller = match self.0.user_id {
            Some(id) => caller_for_user(state, id, "xet token", role).await?.ok_or_else(gone)?,
            None => Caller::default(),
        };
        if row.private && !caller.can_read_private(&row.name.namespace) {
            return Err(gone());
        }
        if self.0.write {
            caller.require(&row.name.namespace, Role::Write)?;
        }
        Ok(row)
    }
}

fn check_prefix(prefix: &str) -> ApiResult<()> {
    // hf_xet 1.8 sends `default` everywhere; the docs say `default-merkledb` for chunks.
    match prefix {
        "default" | "default-merkledb" => Ok(()),
        other => Err(ApiError::not_found(format!("unknown CAS prefix {other:?}"))),
    }
}

/// `POST /xet/v1/xorbs/{prefix}/{hash}`.
pub async fn upload_xorb(
    State(state): State<AppState>,
    cas: CasCaller,
    Path((prefix, hash)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<XorbUploadResponse>> {
    cas.require_write()?;
    check_prefix(&prefix)?;
    let hash = xet::parse_hash(&hash, "the xorb hash")?;
    cas.repo(&state).await?;
    // In its own task: a client that disconnects ends the body with an error, and the partial
    // object is aborted rather than left half-written by a cancelled future.
    let st = state.clone();
    let inserted = tokio::spawn(async move { xet::ingest_xorb(&st, hash, body).await }).await??;
    Ok(Json(XorbUploadResponse { was_inserted: inserted }))
}

/// `POST /xet/v1/shards`.
pub async fn upload_shard(State(state): State<AppState>, cas: CasCaller, body: Body) -> ApiResult<Json<ShardUploadResponse>> {
    cas.require_write()?;
    let row = cas.repo(&state).await?;
    xet::register_shard(&state, &row.id, body).await?;
    Ok(Json(ShardUploadResponse { result: 1 }))
}

/// Routes hf_xet probes and falls back from when they answer 404 (`/v1/xorb-grants`,
/// `/v2/shards`); any other status would fail the transfer.
pub async fn not_offered(body: Body) -> ApiError {
    let _ = axum::body::to_bytes(body, 64 * 1024 * 1024).await;
    ApiError::not_found("not offered by this hub")
}

/// `POST /v1/telemetry` (at the origin root, as hf_xet sends it): accepted and dropped.
pub async fn telemetry(body: Body) -> StatusCode {
    let _ = axum::body::to_bytes(body, 1024 * 1024).await;
    StatusCode::NO_CONTENT
}

/// `GET /xet/v1/chunks/{prefix}/{hash}`: global dedup.
pub async fn dedup(State(state): State<AppState>, cas: CasCaller, Path((prefix, hash)): Path<(String, String)>) -> ApiResult<Response> {
    check_prefix(&prefix)?;
    let chunk = xet::parse_hash(&hash, "the chunk hash")?;
    cas.repo(&state).await?;
    match xet::dedup_shard(&state, &chunk).await? {
        Some(shard) => Ok(([(header::CONTENT_TYPE, "application/octet-stream")], shard).into_response()),
        None => Err(ApiError::not_found("no shard holds this chunk")),
    }
}

const RANGE_URL_TTL: i64 = 3600;

fn range_claim(xorb: &str, start: u64, end: u64) -> String {
    format!("xorb-range {xorb} {start}-{end}")
}

/// One signed URL per byte range: a xorb may hold chunks of several files, so a URL must not
/// open more of it than the reconstruction granted.
fn range_url(state: &AppState, cas: &str, xorb: &str, start: u64, end: u64) -> String {
    let exp = now() + RANGE_URL_TTL;
    let sig = crate::lfs::sign(&state.secret, &range_claim(xorb, start, end), exp);
    format!("{cas}/v1/xorb-ranges/{xorb}?r={start}-{end}&exp={exp}&sig={sig}")
}

/// The terms and fetches of a reconstruction, after the access checks.
async fn reconstruction(
    state: &AppState,
    cas: &CasCaller,
    hash: &str,
    headers: &HeaderMap,
) -> ApiResult<Option<(xet::Reconstruction, String)>> {
    let file_hash = xet::parse_hash(hash, "the file hash")?.hex();
    let row = cas.repo(state).await?;
    let not_found = || ApiError::not_found(format!("no file {file_hash} in this repo"));
    let file = state.db.xet_file(&file_hash).await?.ok_or_else(not_found)?;
    if !state.db.repo_sees_xet_file(&row.id, &file_hash).await? {
        return Err(not_found());
    }
    if file.size == 0 {
        return Ok(None);
    }
    let (first, last) = match parse_range(headers, file.size) {
        Ok(r) => r.unwrap_or((0, file.size - 1)),
        // hf_xet reads a 416 as the end of the file.
        Err(()) => return Err(ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("the file has {} bytes", file.size))),
    };
    Ok(Some((xet::plan_fetches(state, &file, first, last).await?, cas_url(state, headers))))
}

fn terms_json(r: &xet::Reconstruction) -> Vec<ReconstructionTerm> {
    r.terms
        .iter()
        .map(|t| ReconstructionTerm { hash: t.xorb.hex(), unpacked_length: t.unpacked, range: ChunkRange { start: t.start, end: t.end } })
        .collect()
}

/// `GET /xet/v2/reconstructions/{file_hash}`.
pub async fn reconstruction_v2(
    State(state): State<AppState>,
    cas: CasCaller,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<ReconstructionV2>> {
    let Some((r, cas_url)) = reconstruction(&state, &cas, &hash, &headers).await? else {
        return Ok(Json(ReconstructionV2 { offset_into_first_range: 0, terms: Vec::new(), xorbs: HashMap::new() }));
    };
    let mut xorbs: HashMap<String, Vec<XorbFetch>> = HashMap::new();
    for f in &r.fetches {
        let xorb = f.xorb.hex();
        let url = range_url(&state, &cas_url, &xorb, f.bytes.0, f.bytes.1);
        let ranges = vec![XorbRangeDescriptor {
            chunks: ChunkRange { start: f.chunks.0, end: f.chunks.1 },
            bytes: HttpRange { start: f.bytes.0, end: f.bytes.1 },
        }];
        xorbs.entry(xorb).or_default().push(XorbFetch { url, ranges });
    }
    Ok(Json(ReconstructionV2 { offset_into_first_range: r.offset, terms: terms_json(&r), xorbs }))
}

/// `GET /xet/v1/reconstructions/{file_hash}`.
pub async fn reconstruction_v1(
    State(state): State<AppState>,
    cas: CasCaller,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<ReconstructionV1>> {
    let Some((r, cas_url)) = reconstruction(&state, &cas, &hash, &headers).await? else {
        return Ok(Json(ReconstructionV1 { offset_into_first_range: 0, terms: Vec::new(), fetch_info: HashMap::new() }));
    };
    let mut fetch_info: HashMap<String, Vec<FetchInfoV1>> = HashMap::new();
    for f in &r.fetches {
        let xorb = f.xorb.hex();
        let url = range_url(&state, &cas_url, &xorb, f.bytes.0, f.bytes.1);
        fetch_info.entry(xorb).or_default().push(FetchInfoV1 {
            range: ChunkRange { start: f.chunks.0, end: f.chunks.1 },
            url,
            url_range: HttpRange { start: f.bytes.0, end: f.bytes.1 },
        });
    }
    Ok(Json(ReconstructionV1 { offset_into_first_range: r.offset, terms: terms_json(&r), fetch_info }))
}

/// `GET /xet/v1/xorb-ranges/{hash}?r=S-E&exp=…&sig=…`: stored xorb bytes within a signed range,
/// fetched without credentials (hf_xet sends none to these URLs).
pub async fn xorb_range(State(state): State<AppState>, Path(hash): Path<String>, q: QueryPairs, headers: HeaderMap) -> ApiResult<Response> {
    let forbidden = || ApiError::forbidden("invalid or expired xorb range URL; ask for the reconstruction again");
    let xorb = xet::parse_hash(&hash, "the xorb hash")?;
    let (start, end) = q
        .get("r")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(forbidden)?;
    let exp = q.get("exp").and_then(|e| e.parse::<i64>().ok()).ok_or_else(forbidden)?;
    if start > end || !crate::lfs::verify(&state.secret, &range_claim(&hash, start, end), exp, q.get("sig").unwrap_or("")) {
        return Err(forbidden());
    }
    let layout = xet::layout(&state, &xorb).await?.ok_or_else(|| ApiError::not_found("no such xorb"))?;
    let stored_len = layout.chunks.last().map(|c| c.end as u64).unwrap_or(0);
    if end >= stored_len {
        return Err(forbidden());
    }
    // The Range asked for must lie inside the signed one (absent: the signed range itself).
    let (a, b) = match parse_range(&headers, stored_len) {
        Ok(Some((a, b))) if a >= start && b <= end => (a, b),
        Ok(None) if !headers.contains_key(header::RANGE) => (start, end),
        _ => return Err(ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("this URL serves bytes {start}-{end} only"))),
    };
    let stream = state.storage.read_xet(&XetKey::Xorb(hash.clone()), a..b + 1).await?;
    let mut resp = (StatusCode::PARTIAL_CONTENT, Body::from_stream(stream)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(b - a + 1));
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{stored_len}")) {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}
