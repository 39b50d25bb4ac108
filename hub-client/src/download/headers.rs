//! What `/resolve`'s headers say about a file: its ETag, and whether (and how) it is served
//! through Xet.

use crate::xet::XetFileData;
use reqwest::header::HeaderMap;

pub(super) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn normalize_etag(e: &str) -> String {
    e.trim_start_matches("W/").trim_matches('"').to_string()
}

pub(super) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `X-Xet-Hash` plus the token route (`Link: <url>; rel="xet-auth"`, or `X-Xet-Refresh-Route`):
/// both or nothing, as huggingface_hub reads them.
pub(super) fn xet_file_data(h: &HeaderMap) -> Option<XetFileData> {
    let hash = header(h, "x-xet-hash").filter(|v| is_sha256(v))?.to_ascii_lowercase();
    let from_link = h.get_all(reqwest::header::LINK).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        let rel_xet = params.split(';').any(|p| p.replace([' ', '"'], "") == "rel=xet-auth");
        rel_xet.then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    });
    let refresh_url = from_link.or_else(|| header(h, "x-xet-refresh-route").map(str::to_string))?;
    Some(XetFileData { hash, refresh_url })
}
