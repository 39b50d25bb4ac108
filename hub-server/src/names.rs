//! Repository types, names and in-repo paths, validated once at the edge.

use crate::error::{ApiError, ApiResult};

/// The repo types, shared with hub-client's wire types.
pub use hub_client::types::RepoType;

/// `models`, `datasets`, `spaces`: the segment after `/api/`.
pub fn repo_type_from_plural(s: &str) -> Option<RepoType> {
    match s {
        "models" => Some(RepoType::Model),
        "datasets" => Some(RepoType::Dataset),
        "spaces" => Some(RepoType::Space),
        _ => None,
    }
}

/// A repo type as request bodies name it (`model`, `dataset`, `space`).
pub fn parse_repo_type(s: &str) -> ApiResult<RepoType> {
    match s {
        "model" => Ok(RepoType::Model),
        "dataset" => Ok(RepoType::Dataset),
        "space" => Ok(RepoType::Space),
        other => Err(ApiError::bad_request(format!("unknown repo type {other:?}: expected model, dataset or space"))),
    }
}

/// Hub naming rules (the same huggingface_hub validates client-side): ASCII letters, digits,
/// `-`, `_`, `.`; 1–96 characters; no leading/trailing `-` or `.`; no `--` or `..`; no `.git` suffix.
pub fn validate_name(kind: &str, name: &str) -> ApiResult<()> {
    let bad = |why: &str| Err(ApiError::bad_request(format!("invalid {kind} name {name:?}: {why}")));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 96 {
        return bad("it is longer than 96 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return bad("only ASCII letters, digits, '-', '_' and '.' are allowed");
    }
    if name.starts_with(['-', '.']) || name.ends_with(['-', '.']) {
        return bad("it must not start or end with '-' or '.'");
    }
    if name.contains("--") || name.contains("..") {
        return bad("'--' and '..' are not allowed");
    }
    if name.ends_with(".git") {
        return bad("it must not end with '.git'");
    }
    Ok(())
}

/// A repo as named in a request: type + namespace + name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoName {
    pub repo_type: RepoType,
    pub namespace: String,
    pub name: String,
}

impl RepoName {
    pub fn new(repo_type: RepoType, namespace: &str, name: &str) -> ApiResult<Self> {
        validate_name("namespace", namespace)?;
        validate_name("repository", name)?;
        Ok(RepoName { repo_type, namespace: namespace.to_string(), name: name.to_string() })
    }
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
    /// `{prefix}{ns}/{name}`, the web path of the repo (no leading slash).
    pub fn web_path(&self) -> String {
        format!("{}{}/{}", self.repo_type.url_prefix(), self.namespace, self.name)
    }
}

/// Directory levels a repo path may have (git trees are walked recursively in places; real
/// repos are a handful deep).
pub const MAX_PATH_DEPTH: usize = 128;

/// Validates a repo-relative file path from a commit or upload. Returns it unchanged.
pub fn validate_repo_path(path: &str) -> ApiResult<&str> {
    let bad = |why: &str| Err(ApiError::bad_request(format!("invalid path {path:?}: {why}")));
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.len() > 4096 {
        return bad("it is longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return bad("it must be relative to the repository root (no leading '/')");
    }
    if path.contains('\0') {
        return bad("it contains a NUL byte");
    }
    if path.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if path.split('/').count() > MAX_PATH_DEPTH {
        return bad(&format!("it is nested deeper than {MAX_PATH_DEPTH} directories"));
    }
    if path.contains('\\') {
        return bad("use '/' as the separator, not '\\'");
    }
    for seg in path.split('/') {
        match seg {
            "" => return bad("it contains an empty segment"),
            "." | ".." => return bad("'.' and '..' segments are not allowed"),
            _ if is_git_dir_alias(seg) => return bad("'.git' components (or names git reads as '.git') are not allowed"),
            _ => {}
        }
        if seg.len() > 255 {
            return bad("a segment is longer than 255 bytes");
        }
    }
    Ok(path)
}

/// Names git (libgit2 with `core.protectNTFS`, its default) refuses in a tree because some
/// filesystem would read them as `.git`: any case, trailing dots or spaces, an NTFS stream
/// (`.git:x`), the 8.3 short name `git~1`.
fn is_git_dir_alias(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase();
    let base = lower.split(':').next().unwrap_or("").trim_end_matches(['.', ' ']);
    base == ".git" || base == "git~1"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path segment the hub accepts, git accepts in a tree too (a refusal there was a 500,
    /// found by the names_paths fuzz target: a commit of `.git:configt.tc`).
    #[test]
    fn segments_the_hub_accepts_are_segments_git_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let blob = repo.blob(b"x").unwrap();
        let mut names: Vec<String> = [
            ".git",
            ".GIT",
            ".git.",
            ".git ",
            ".git. .",
            ".git:",
            ".git:x",
            ".git::$INDEX_ALLOCATION",
            ".Git:configt.tc",
            "git~1",
            "GIT~1",
            "git~1:x",
            "git~2",
            ".gitx",
            ".git-blame",
            ".gitattributes",
            ".gitmodules",
            "x.git",
            "git",
            "a:b",
            "con",
            "aux.txt",
            "trailing.",
            "trailing ",
            ".git\u{200c}",
            "\u{200c}.git",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend((0u8..128).filter(|b| !b.is_ascii_control() && *b != b'/').map(|b| format!(".git{}", b as char)));
        for name in names {
            let mut tree = repo.treebuilder(None).unwrap();
            let git_ok = tree.insert(&name, blob, 0o100644).is_ok();
            if validate_repo_path(&name).is_ok() {
                assert!(git_ok, "the hub accepts {name:?} but git refuses it in a tree");
            }
        }
        assert!(validate_repo_path(".Git:configt.tc").is_err());
        assert!(validate_repo_path("dir/GIT~1/x").is_err());
        assert!(validate_repo_path(".gitattributes").is_ok());
    }

    #[test]
    fn names_follow_the_hub_rules() {
        for ok in ["bert", "a", "my_model.v2", "A-b_c.d", &"x".repeat(96)] {
            assert!(validate_name("repository", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "x-", ".x", "x.", "a--b", "a..b", "x.git", "has space", "a/b", "é", &"x".repeat(97)] {
            assert!(validate_name("repository", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repo_paths_are_relative_and_clean() {
        for ok in ["a", "a/b.txt", "sub dir/big.bin", ".gitattributes", "x/.gitignore"] {
            assert!(validate_repo_path(ok).is_ok(), "{ok}");
        }
        let deep = vec!["d"; MAX_PATH_DEPTH + 1].join("/");
        for bad in ["", "/a", "a//b", "a/", "../a", "a/./b", ".git/config", "a/.git/x", "a\0b", "a\\b", "a\nb", "a\rb", &deep] {
            assert!(validate_repo_path(bad).is_err(), "{bad:?}");
        }
    }
}
