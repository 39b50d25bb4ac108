//! Typed errors, mapped from the Hub's `X-Error-Code` and status, with messages that say what
//! to do.

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("repository {repo} not found (or you may not see it: pass a token with read access)")]
    RepoNotFound { repo: String },
    #[error("revision {revision:?} not found in {repo}")]
    RevisionNotFound { repo: String, revision: String },
    #[error("{path} not found in {repo} at {revision}")]
    EntryNotFound { repo: String, revision: String, path: String },
    #[error("authentication failed: {message} (check HF_TOKEN or run `hub login`)")]
    Unauthorized { message: String },
    #[error("forbidden: {message}")]
    Forbidden { message: String },
    #[error("conflict: {message}")]
    Conflict { message: String },
    #[error("HTTP {status} from {url}: {message}")]
    Http { status: u16, url: String, message: String },
    #[error("offline mode: {what} is not in the cache ({hint})")]
    NotCached { what: String, hint: String },
    #[error("{path}: downloaded content hashes to {actual}, expected {expected}")]
    HashMismatch { path: String, expected: String, actual: String },
    #[error("{path}: received {actual} bytes, expected {expected}")]
    SizeMismatch { path: String, expected: u64, actual: u64 },
    #[error("unexpected answer from the hub: {0}")]
    InvalidResponse(String),
    #[error("network error: {0}")]
    Network(#[from] reqwest::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl HubError {
    /// Whether a cached copy may stand in (the hub was unreachable or failing).
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Network(_) => true,
            HubError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, HubError>;
