//! What the write routes read and answer: repo management, preupload, commit.

use super::RepoType;
use serde::{Deserialize, Serialize};

/// `POST /api/repos/create` and `DELETE /api/repos/delete` (the create-only keys are skipped
/// when unset). `organization: null` means the caller's own namespace; `type` absent means model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RepoRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub repo_type: Option<String>,
    /// huggingface_hub 2.x: `public`, `private` or `protected` (spaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    /// hf-hub 1.0 and this crate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
}

impl RepoRequest {
    /// The request naming `id` (`namespace/name`, or a bare name for the caller's namespace).
    pub fn for_id(repo_type: RepoType, id: &str) -> RepoRequest {
        let (org, name) = id.split_once('/').map(|(o, n)| (Some(o.to_string()), n)).unwrap_or((None, id));
        RepoRequest {
            name: Some(name.to_string()),
            organization: org,
            repo_type: Some(repo_type.as_str().to_string()),
            ..Default::default()
        }
    }
}

/// `POST /api/repos/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRequest {
    #[serde(rename = "fromRepo")]
    pub from_repo: String,
    #[serde(rename = "toRepo")]
    pub to_repo: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub repo_type: Option<String>,
}

/// The answer of create (`name` and `id` too) and move (`url` only), and the body of create's 409.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `PUT …/settings`: any of the keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SettingsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    /// `false`, `"auto"` or `"manual"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gated: Option<serde_json::Value>,
}

/// The settings as they stand after `PUT …/settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoSettings {
    pub private: bool,
    pub gated: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreuploadFile {
    pub path: String,
    /// Base64 of the first 512 bytes.
    #[serde(default)]
    pub sample: String,
    pub size: u64,
}

/// `POST …/preupload/{rev}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreuploadRequest {
    pub files: Vec<PreuploadFile>,
    #[serde(rename = "gitIgnore", default, skip_serializing_if = "Option::is_none")]
    pub git_ignore: Option<String>,
}

/// How a file travels: inline in the commit, or as an LFS (or Xet) object beforehand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadMode {
    Lfs,
    Regular,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreuploadDecision {
    pub path: String,
    #[serde(rename = "uploadMode")]
    pub upload_mode: UploadMode,
    #[serde(rename = "shouldIgnore", default)]
    pub should_ignore: bool,
    /// The remote file's git blob id (regular) or SHA-256 (LFS); `null` when it does not exist.
    #[serde(default)]
    pub oid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreuploadResponse {
    pub files: Vec<PreuploadDecision>,
    /// The commit `rev` names now.
    #[serde(rename = "commitOid", default, skip_serializing_if = "Option::is_none")]
    pub commit_oid: Option<String>,
}

/// `POST …/commit/{rev}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(rename = "commitOid")]
    pub commit_oid: String,
    /// `{endpoint}/{prefix}{ns}/{name}/commit/{sha}` (huggingface_hub parses the repo out of it).
    #[serde(rename = "commitUrl")]
    pub commit_url: String,
    /// With `create_pr=1`: ends with `/discussions/{n}`.
    #[serde(rename = "pullRequestUrl", default, skip_serializing_if = "Option::is_none")]
    pub pull_request_url: Option<String>,
    #[serde(rename = "prNum", default, skip_serializing_if = "Option::is_none")]
    pub pr_num: Option<u64>,
}

/// `POST …/branch/{branch}`: from `startingPoint` (a revision), else the default branch's head.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BranchRequest {
    #[serde(rename = "startingPoint", default, skip_serializing_if = "Option::is_none")]
    pub starting_point: Option<String>,
}

/// `POST …/tag/{revision}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRequest {
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer of `POST …/super-squash/{branch}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOid {
    #[serde(rename = "commitOid")]
    pub commit_oid: String,
}

/// `POST …/super-squash/{branch}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SquashRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One line of the NDJSON commit body (`POST …/commit/{rev}`): `{"key": …, "value": …}`, the
/// header first, then the operations in order (later lines win).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "key", content = "value")]
pub enum NdjsonLine {
    #[serde(rename = "header")]
    Header(NdjsonHeader),
    #[serde(rename = "file")]
    File(NdjsonFile),
    #[serde(rename = "lfsFile")]
    LfsFile(NdjsonLfsFile),
    #[serde(rename = "deletedFile")]
    DeletedFile(NdjsonPath),
    #[serde(rename = "deletedFolder")]
    DeletedFolder(NdjsonPath),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonHeader {
    /// The commit title (must not be empty).
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Optimistic concurrency: refuse unless the branch head is this commit (5–40 hex).
    #[serde(rename = "parentCommit", default, skip_serializing_if = "Option::is_none")]
    pub parent_commit: Option<String>,
}

/// A file sent inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonFile {
    pub path: String,
    pub content: String,
    /// `base64` (the default) or `utf-8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// A file whose bytes are an LFS object already uploaded (or held by the repo, for copies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonLfsFile {
    pub path: String,
    pub oid: String,
    /// `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algo: Option<String>,
    /// Omitted by server-side copies: the hub looks it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A file or folder to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonPath {
    pub path: String,
}
