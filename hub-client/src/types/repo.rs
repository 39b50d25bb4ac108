//! What the read routes answer: repo info and listings, trees and paths-info, refs, history.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Repo info (`GET /api/{t}s/{id}[/revision/{rev}]`) and listing items. With `expand` the hub
/// keeps only the named keys (plus `id` and `_id`), so every other field may be absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RepoInfo {
    /// The hub's own id of the repo (stable across renames).
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub internal_id: Option<String>,
    /// `namespace/name`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The commit the answer describes (info) or the default branch's head (listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    /// `false`, or `"auto"` / `"manual"` on a hub with gated repos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gated: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likes: Option<u64>,
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(rename = "lastModified", default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Models only (`Some(None)`: `null`, the card names none).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub pipeline_tag: Option<Option<String>>,
    /// Models only (`Some(None)`: `null`, the card names none).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub library_name: Option<Option<String>>,
    /// The README's YAML front matter as JSON.
    #[serde(rename = "cardData", default, skip_serializing_if = "Option::is_none")]
    pub card_data: Option<serde_json::Value>,
    /// Every file at the revision (recursive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siblings: Option<Vec<Sibling>>,
    /// Models only: the spaces that use it (none on this hub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spaces: Option<Vec<String>>,
    /// Bytes the repo's content occupies on the hub.
    #[serde(rename = "usedStorage", default, skip_serializing_if = "Option::is_none")]
    pub used_storage: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safetensors: Option<SafetensorsInfo>,
}

/// Reads a key that is present as `Some`, `null` included (absent keys take the default `None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A file of a repo as the info route lists it (`blobs=true` adds size, blob id and LFS info).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sibling {
    pub rfilename: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(rename = "blobId", default, skip_serializing_if = "Option::is_none")]
    pub blob_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs: Option<SiblingLfs>,
    /// The Xet file hash of a Xet-backed file.
    #[serde(rename = "xetHash", default, skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<String>,
}

/// A sibling's LFS object (note `sha256` here where tree entries say `oid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiblingLfs {
    pub sha256: String,
    pub size: u64,
    #[serde(rename = "pointerSize", default, skip_serializing_if = "Option::is_none")]
    pub pointer_size: Option<u64>,
}

/// Parameter counts by dtype of a revision's safetensors files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SafetensorsInfo {
    pub parameters: BTreeMap<String, u64>,
    pub total: u64,
}

/// Whether a tree entry is a file or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Directory,
}

/// An entry of `GET …/tree/{rev}[/{path}]` and `POST …/paths-info/{rev}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// The git blob or tree id.
    pub oid: String,
    /// The real size (an LFS file's, not its pointer's); 0 for folders.
    pub size: u64,
    /// Relative to the repo root.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs: Option<TreeLfs>,
    /// The Xet file hash of a Xet-backed file.
    #[serde(rename = "xetHash", default, skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<String>,
    /// With `expand=true`: the last commit that changed the entry.
    #[serde(rename = "lastCommit", default, skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<LastCommit>,
}

impl TreeEntry {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Directory
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeLfs {
    pub oid: String,
    pub size: u64,
    #[serde(rename = "pointerSize", default, skip_serializing_if = "Option::is_none")]
    pub pointer_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCommit {
    pub id: String,
    pub title: String,
    /// RFC 3339 with milliseconds, UTC (`2026-11-27T14:43:45.000Z`).
    pub date: String,
}

/// `GET …/refs[?include_prs=1]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GitRefs {
    pub branches: Vec<GitRef>,
    pub tags: Vec<GitRef>,
    /// Always present, always empty here (huggingface.co's parquet conversions).
    #[serde(default)]
    pub converts: Vec<GitRef>,
    /// Only with `include_prs=1`.
    #[serde(rename = "pullRequests", default, skip_serializing_if = "Option::is_none")]
    pub pull_requests: Option<Vec<GitRef>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRef {
    /// `main`, `v1`, or `refs/pr/1` for pull requests.
    pub name: String,
    /// The full ref name.
    #[serde(rename = "ref")]
    pub full_ref: String,
    #[serde(rename = "targetCommit")]
    pub target_commit: String,
}

/// An item of `GET …/commits/{rev}` (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitCommitInfo {
    pub id: String,
    pub title: String,
    pub message: String,
    pub authors: Vec<CommitAuthor>,
    pub date: String,
    #[serde(default)]
    pub parents: Vec<String>,
    /// With `expand[]=formatted`: title and message as HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<FormattedCommit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitAuthor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormattedCommit {
    pub title: String,
    pub message: String,
}

/// `POST …/paths-info/{rev}` as JSON (hf-hub 1.0; huggingface_hub sends the same form-encoded).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PathsInfoRequest {
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<bool>,
}
