//! The Git LFS batch API (`POST /{repo}.git/info/lfs/objects/batch`), with huggingface.co's
//! multipart transfer, and the verify and multipart-completion bodies.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsBatchRequest {
    /// `upload` or `download`.
    pub operation: String,
    /// The transfers the client can do (`basic`, `multipart`, …), best first.
    #[serde(default)]
    pub transfers: Vec<String>,
    pub objects: Vec<LfsObjectSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algo: Option<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<LfsRef>,
}

/// An object named by its SHA-256 and size. The size is signed on the wire so that a negative
/// one can be answered with a per-object error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsObjectSpec {
    pub oid: String,
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsRef {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsBatchResponse {
    /// `basic`, or `multipart` when any object got part URLs.
    pub transfer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algo: Option<String>,
    pub objects: Vec<LfsObject>,
}

/// One object of an answer: no `actions` and no `error` means there is nothing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsObject {
    pub oid: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<LfsActions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<LfsObjectError>,
}

impl LfsObject {
    /// Nothing to do for this object (the repo holds it already).
    pub fn done(oid: String, size: i64) -> LfsObject {
        LfsObject { oid, size, authenticated: None, actions: None, error: None }
    }
    pub fn failed(oid: String, size: i64, code: u16, message: impl Into<String>) -> LfsObject {
        LfsObject { error: Some(LfsObjectError { code, message: message.into() }), ..LfsObject::done(oid, size) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LfsActions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<LfsAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<LfsAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<LfsAction>,
}

/// Where to send the bytes. For a multipart upload `href` is the completion URL and `header`
/// holds `chunk_size` plus one signed URL per part, keyed `"1"`, `"2"`, ….
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsAction {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

impl LfsAction {
    /// The part size of a multipart upload action.
    pub fn chunk_size(&self) -> Option<u64> {
        self.header.as_ref()?.get("chunk_size")?.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsObjectError {
    pub code: u16,
    pub message: String,
}

/// The body of the verify action's POST (and of its answer's `message` on success).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsVerifyRequest {
    pub oid: String,
    pub size: u64,
}

/// What the verify action answers once the object is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsVerified {
    pub message: String,
}

/// The body of a multipart upload's completion POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartCompletion {
    pub oid: String,
    pub parts: Vec<CompletedPart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    #[serde(rename = "partNumber")]
    pub part_number: u64,
    /// The part's `ETag` answer header, quotes kept.
    pub etag: String,
}
