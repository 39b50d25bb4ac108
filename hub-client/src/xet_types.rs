//! Wire types of the Xet protocol (the hub's token routes and the CAS API): the server
//! serialises these and hub-client reads them. Field names follow hf_xet 1.8's `cas_types`.
//! Hash strings are 64 lowercase hex characters in Xet's "8-byte groups reversed" form.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Body of `GET /api/{type}s/{ns}/{name}/xet-{read,write}-token/{rev}` (the same values also
/// travel as `X-Xet-Cas-Url`, `X-Xet-Access-Token`, `X-Xet-Token-Expiration` headers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct XetTokenInfo {
    pub access_token: String,
    /// Unix seconds.
    pub exp: u64,
    /// The CAS base URL, without a trailing slash.
    pub cas_url: String,
}

/// `[start, end)` chunk indices within a xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    pub start: u32,
    pub end: u32,
}

/// `[start, end]` bytes (inclusive end, as in an HTTP Range header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRange {
    pub start: u64,
    pub end: u64,
}

/// Chunks `range` of xorb `hash`, which unpack to `unpacked_length` bytes of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconstructionTerm {
    pub hash: String,
    pub unpacked_length: u32,
    pub range: ChunkRange,
}

/// One byte range of a stored xorb and the chunks it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XorbRangeDescriptor {
    pub chunks: ChunkRange,
    pub bytes: HttpRange,
}

/// A signed URL and the byte ranges it may be fetched with (one per URL from this hub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XorbFetch {
    pub url: String,
    pub ranges: Vec<XorbRangeDescriptor>,
}

/// `GET /v2/reconstructions/{file_hash}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconstructionV2 {
    /// Where the requested range starts within the first term's bytes.
    pub offset_into_first_range: u64,
    pub terms: Vec<ReconstructionTerm>,
    pub xorbs: HashMap<String, Vec<XorbFetch>>,
}

/// One fetch of the v1 answer: chunks `range`, bytes `url_range` of `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchInfoV1 {
    pub range: ChunkRange,
    pub url: String,
    pub url_range: HttpRange,
}

/// `GET /v1/reconstructions/{file_hash}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconstructionV1 {
    pub offset_into_first_range: u64,
    pub terms: Vec<ReconstructionTerm>,
    pub fetch_info: HashMap<String, Vec<FetchInfoV1>>,
}

/// `POST /v1/xorbs/{prefix}/{hash}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XorbUploadResponse {
    pub was_inserted: bool,
}

/// `POST /v1/shards`: `result` 1 = registered, 0 = already known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardUploadResponse {
    pub result: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstruction_v2_reads_as_hf_xet_writes_it() {
        let text = r#"{"offset_into_first_range":5,
            "terms":[{"hash":"ab","unpacked_length":64871,"range":{"start":0,"end":1}}],
            "xorbs":{"ab":[{"url":"http://h/x","ranges":[{"chunks":{"start":0,"end":1},"bytes":{"start":0,"end":65017}}]}]}}"#;
        let r: ReconstructionV2 = serde_json::from_str(text).unwrap();
        assert_eq!(r.terms[0].range, ChunkRange { start: 0, end: 1 });
        assert_eq!(r.xorbs["ab"][0].ranges[0].bytes, HttpRange { start: 0, end: 65017 });
        let back: ReconstructionV2 = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn token_info_is_camel_case() {
        let t = XetTokenInfo { access_token: "t".into(), exp: 7, cas_url: "http://h/xet".into() };
        assert_eq!(serde_json::to_value(&t).unwrap(), serde_json::json!({"accessToken":"t","exp":7,"casUrl":"http://h/xet"}));
    }
}
