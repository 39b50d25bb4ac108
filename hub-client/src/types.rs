//! Wire types of the Hub HTTP API (serde only; no HTTP client).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    #[default]
    Model,
    Dataset,
    Space,
}

impl RepoType {
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
            RepoType::Space => "space",
        }
    }
    /// The `/api/{plural}/` segment.
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }
    /// The prefix of web, resolve and git URLs.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        }
    }
    /// The cache folder prefix (`models--…`), shared with huggingface_hub.
    pub fn cache_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }
}

impl std::str::FromStr for RepoType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "model" | "models" => Ok(RepoType::Model),
            "dataset" | "datasets" => Ok(RepoType::Dataset),
            "space" | "spaces" => Ok(RepoType::Space),
            other => Err(format!("unknown repo type {other:?} (model, dataset or space)")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiblingLfs {
    pub sha256: String,
    pub size: u64,
    #[serde(rename = "pointerSize", default)]
    pub pointer_size: Option<u64>,
}

/// A file of a repo as the info route lists it (`blobs=true` adds size, blob id and LFS info).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(rename = "blobId", default)]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub lfs: Option<SiblingLfs>,
    /// The Xet file hash of a Xet-backed file.
    #[serde(rename = "xetHash", default, skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<String>,
}

/// Repo info (`GET /api/{t}s/{id}[/revision/{rev}]`) and listing items.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoInfo {
    pub id: String,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub private: Option<bool>,
    #[serde(default)]
    pub siblings: Option<Vec<Sibling>>,
    #[serde(rename = "lastModified", default)]
    pub last_modified: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub pipeline_tag: Option<String>,
    #[serde(default)]
    pub library_name: Option<String>,
    #[serde(default)]
    pub downloads: Option<u64>,
    #[serde(default)]
    pub likes: Option<u64>,
    #[serde(rename = "cardData", default)]
    pub card_data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeLfs {
    pub oid: String,
    pub size: u64,
    #[serde(rename = "pointerSize", default)]
    pub pointer_size: Option<u64>,
}

/// An entry of `GET …/tree/{rev}[/{path}]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub oid: String,
    pub size: u64,
    pub path: String,
    #[serde(default)]
    pub lfs: Option<TreeLfs>,
    /// The Xet file hash of a Xet-backed file.
    #[serde(rename = "xetHash", default, skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<String>,
}

impl TreeEntry {
    pub fn is_dir(&self) -> bool {
        self.kind == "directory"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreuploadFile {
    pub path: String,
    pub sample: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreuploadRequest {
    pub files: Vec<PreuploadFile>,
    #[serde(rename = "gitIgnore", skip_serializing_if = "Option::is_none")]
    pub git_ignore: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreuploadDecision {
    pub path: String,
    #[serde(rename = "uploadMode")]
    pub upload_mode: String,
    #[serde(rename = "shouldIgnore", default)]
    pub should_ignore: bool,
    #[serde(default)]
    pub oid: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreuploadResponse {
    pub files: Vec<PreuploadDecision>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitResponse {
    #[serde(rename = "commitOid")]
    pub commit_oid: String,
    #[serde(rename = "commitUrl")]
    pub commit_url: String,
    #[serde(rename = "pullRequestUrl", default)]
    pub pull_request_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    pub name: String,
    #[serde(default)]
    pub fullname: Option<String>,
    #[serde(default)]
    pub orgs: Vec<serde_json::Value>,
    #[serde(default)]
    pub auth: Option<serde_json::Value>,
}
