//! The Git LFS batch API and its self-authenticating transfer URLs. Python's LFS PUT carries no
//! hub headers, so upload and download hrefs are signed with the hub's secret (HMAC-SHA256) and
//! expire; the hub verifies size and SHA-256 before an object becomes visible.

use crate::app::AppState;
use crate::content;
use crate::error::ApiResult;
use crate::storage::is_sha256;
use hmac::{Hmac, Mac};
use hub_client::types::{LfsAction, LfsActions, LfsBatchRequest, LfsBatchResponse, LfsObject, LfsObjectSpec};
use sha2::Sha256;
use std::collections::BTreeMap;

/// Most parts of one multipart upload (S3's limit).
pub const MAX_PARTS: u64 = 10_000;

/// Transfer URLs stay valid this long (large uploads and resumes reuse them).
pub const URL_TTL_SECS: i64 = 24 * 3600;

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Signs `what` with the hub's secret, valid until `exp` (unix seconds).
pub fn sign(secret: &[u8], what: &str, exp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{what}\n{exp}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a signature made by `sign` and that it has not expired.
pub fn verify(secret: &[u8], what: &str, exp: i64, sig: &str) -> bool {
    if exp < now_secs() {
        return false;
    }
    let Ok(sig) = hex::decode(sig) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{what}\n{exp}").as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// Download URLs live shorter: one handed out just before a repo turns private should not keep
/// working for a day.
pub const DOWNLOAD_URL_TTL_SECS: i64 = 3600;

fn signed(state: &AppState, base: &str, path: &str) -> String {
    signed_for(state, base, path, URL_TTL_SECS)
}

fn signed_for(state: &AppState, base: &str, path: &str, ttl: i64) -> String {
    let exp = now_secs() + ttl;
    let sig = sign(&state.secret, path, exp);
    format!("{base}{path}?exp={exp}&sig={sig}")
}

// Transfer URLs name the repo: an upload adds the object to that repo, a download serves only
// what that repo holds.

pub fn upload_path(repo_id: &str, oid: &str, size: u64) -> String {
    format!("/lfs/upload/{repo_id}/{oid}/{size}")
}

pub fn part_path(repo_id: &str, upload_id: &str, oid: &str, size: u64, chunk: u64, part: u64) -> String {
    format!("/lfs/multipart/{repo_id}/{upload_id}/{oid}/{size}/{chunk}/{part}")
}

pub fn complete_path(repo_id: &str, upload_id: &str, oid: &str, size: u64, chunk: u64) -> String {
    format!("/lfs/multipart/{repo_id}/{upload_id}/{oid}/{size}/{chunk}/complete")
}

pub fn download_path(repo_id: &str, oid: &str) -> String {
    format!("/lfs/objects/{repo_id}/{oid}")
}

pub fn download_url(state: &AppState, base: &str, repo_id: &str, oid: &str) -> String {
    signed_for(state, base, &download_path(repo_id, oid), DOWNLOAD_URL_TTL_SECS)
}

/// Where the verify action points and which headers it should carry.
pub struct VerifyTarget {
    pub href: String,
    pub authorization: Option<String>,
}

fn object_error(obj: &LfsObjectSpec, code: u16, message: &str) -> LfsObject {
    LfsObject::failed(obj.oid.clone(), obj.size, code, message)
}

fn action(href: String, header: Option<BTreeMap<String, String>>, expires_in: i64) -> LfsAction {
    LfsAction { href, header, expires_in: Some(expires_in) }
}

/// Answers an upload batch: nothing to do for objects this repo holds; signed basic or
/// multipart actions for the rest, even when another repo's copy is stored (possession is
/// proved by uploading; the stored copy is then shared, not written twice).
#[tracing::instrument(skip_all, fields(repo = %repo_id, objects = req.objects.len()))]
pub async fn upload_batch(
    state: &AppState,
    repo_id: &str,
    base: &str,
    req: &LfsBatchRequest,
    verify: &VerifyTarget,
) -> ApiResult<LfsBatchResponse> {
    let multipart_ok = req.transfers.iter().any(|t| t == "multipart");
    let threshold = state.settings.lfs_multipart_threshold;
    let part_size = state.settings.lfs_part_size;
    let mut any_multipart = false;
    // Part URLs left for this answer: a batch of many huge objects must not become millions of
    // signed URLs (and as many multipart uploads begun); past the budget, single requests.
    let mut parts_left = state.settings.lfs_batch_max_parts;
    let mut objects = Vec::with_capacity(req.objects.len());
    for obj in &req.objects {
        let oid = obj.oid.to_ascii_lowercase();
        if !is_sha256(&oid) {
            objects.push(object_error(obj, 422, "oid must be a lowercase hex SHA-256"));
            continue;
        }
        if obj.size < 0 {
            objects.push(object_error(obj, 422, "size must not be negative"));
            continue;
        }
        let size = obj.size as u64;
        let max = state.settings.lfs_max_object_bytes;
        if size > max {
            objects.push(object_error(obj, 422, &format!("objects may be at most {max} bytes (HUB_LFS_MAX_OBJECT_BYTES)")));
            continue;
        }
        match content::held(state, repo_id, &oid).await? {
            Some(held) if held.size == size => {
                content::record(state, repo_id, &held).await?;
                objects.push(LfsObject::done(oid, obj.size));
                continue;
            }
            Some(held) => {
                objects.push(object_error(obj, 422, &format!("object {oid} is already in this repo with size {}", held.size)));
                continue;
            }
            None => {}
        }
        let auth = verify.authorization.as_ref().map(|a| BTreeMap::from([("Authorization".to_string(), a.clone())]));
        let verify_action = action(verify.href.clone(), auth, URL_TTL_SECS);
        // S3 takes at most 10000 parts (one URL each is built here): huge objects get larger parts.
        let chunk = part_size.max(size.div_ceil(MAX_PARTS).next_multiple_of(1024 * 1024));
        let parts = size.div_ceil(chunk);
        let upload = if multipart_ok && size >= threshold && size > chunk && parts <= parts_left {
            any_multipart = true;
            parts_left -= parts;
            let upload_id = state.storage.begin_multipart().await?;
            let mut header = BTreeMap::from([("chunk_size".to_string(), chunk.to_string())]);
            for n in 1..=parts {
                header.insert(n.to_string(), signed(state, base, &part_path(repo_id, &upload_id, &oid, size, chunk, n)));
            }
            action(signed(state, base, &complete_path(repo_id, &upload_id, &oid, size, chunk)), Some(header), URL_TTL_SECS)
        } else {
            action(signed(state, base, &upload_path(repo_id, &oid, size)), None, URL_TTL_SECS)
        };
        objects.push(LfsObject {
            authenticated: Some(true),
            actions: Some(LfsActions { upload: Some(upload), verify: Some(verify_action), download: None }),
            ..LfsObject::done(oid, obj.size)
        });
    }
    let transfer = if any_multipart { "multipart" } else { "basic" };
    Ok(LfsBatchResponse { transfer: transfer.into(), hash_algo: Some("sha256".into()), objects })
}

/// Answers a download batch with signed URLs of the objects this repo holds; anything else is
/// "does not exist", whether or not another repo has it.
#[tracing::instrument(skip_all, fields(repo = %repo_id, objects = req.objects.len()))]
pub async fn download_batch(state: &AppState, repo_id: &str, base: &str, req: &LfsBatchRequest) -> ApiResult<LfsBatchResponse> {
    let oids: Vec<String> = req.objects.iter().map(|o| o.oid.to_ascii_lowercase()).filter(|o| is_sha256(o)).collect();
    let held: std::collections::HashMap<String, content::HeldObject> =
        state.db.held_objects(repo_id, &oids).await?.into_iter().map(|o| (o.oid.clone(), o)).collect();
    let mut objects = Vec::with_capacity(req.objects.len());
    for obj in &req.objects {
        let oid = obj.oid.to_ascii_lowercase();
        match held.get(&oid) {
            Some(h) => objects.push(LfsObject {
                authenticated: Some(true),
                actions: Some(LfsActions {
                    download: Some(action(download_url(state, base, repo_id, &oid), None, DOWNLOAD_URL_TTL_SECS)),
                    ..Default::default()
                }),
                ..LfsObject::done(oid.clone(), h.size as i64)
            }),
            None => objects.push(object_error(obj, 404, "Object does not exist")),
        }
    }
    Ok(LfsBatchResponse { transfer: "basic".into(), hash_algo: Some("sha256".into()), objects })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_path_and_expiry() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let exp = now_secs() + 60;
        let sig = sign(secret, "/lfs/upload/x/1", exp);
        assert!(verify(secret, "/lfs/upload/x/1", exp, &sig));
        assert!(!verify(secret, "/lfs/upload/x/2", exp, &sig));
        assert!(!verify(secret, "/lfs/upload/x/1", exp + 1, &sig));
        assert!(!verify(b"another secret", "/lfs/upload/x/1", exp, &sig));
        let past = now_secs() - 1;
        assert!(!verify(secret, "/p", past, &sign(secret, "/p", past)));
    }
}
