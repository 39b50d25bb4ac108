//! The wire contract of the Hub HTTP API: hub-server serialises these structs and hub-client
//! (and any Rust client) deserialises them, so the two cannot drift apart. Serde only; no HTTP.
//!
//! Field rules: a key the hub always sends is a plain field (an `Option` where the Hub allows
//! `null`); a key that is sometimes absent (`expand`, `blobs=true`, Xet-only) is an `Option`
//! skipped when `None`, so a value read from the wire writes back the same JSON. Unknown keys
//! (huggingface.co sends many more) are ignored when reading.

mod account;
mod lfs;
mod repo;
#[cfg(test)]
mod tests;
mod upload;

pub use account::*;
pub use lfs::*;
pub use repo::*;
pub use upload::*;

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

impl TryFrom<String> for RepoType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// One message of a list of errors or warnings (`{"message": "…"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message: String,
}

/// The body of every error answer (`X-Error-Code` and `X-Error-Message` travel as headers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// The existing repo's URL, on a 409 from `POST /api/repos/create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `POST /api/validate-yaml` lists what it rejects here as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<Message>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<Message>>,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> ErrorBody {
        ErrorBody { error: error.into(), url: None, errors: None, warnings: None }
    }
}

/// `POST /api/validate-yaml` when the card is accepted (a rejection is an [`ErrorBody`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct YamlValidation {
    pub errors: Vec<Message>,
    pub warnings: Vec<Message>,
}

/// `GET /api/agent-harnesses` (asked once a day by huggingface_hub; this hub has none).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentHarnesses {
    #[serde(rename = "standardEnvVars")]
    pub standard_env_vars: Vec<serde_json::Value>,
    pub harnesses: serde_json::Map<String, serde_json::Value>,
}

/// `{}`: the answer of routes that only succeed or fail (delete, branch, tag, verify, auth-check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// Reads `wire` as a `T` and checks that it writes back exactly the same JSON (no key dropped,
/// renamed, added or turned from absent into `null`): what the contract tests on both sides run
/// the hub's answers through.
pub fn check_round_trip<T>(wire: &serde_json::Value) -> Result<T, String>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let typed: T = serde_json::from_value(wire.clone()).map_err(|e| format!("{wire} does not read as the type: {e}"))?;
    let written = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &written != wire {
        return Err(format!("read {wire}\nwrote {written}"));
    }
    Ok(typed)
}

/// `POST /api/validate-yaml`: a README to check before it is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateYamlRequest {
    /// The whole README.md text.
    pub content: String,
    #[serde(rename = "repoType", default, skip_serializing_if = "Option::is_none")]
    pub repo_type: Option<String>,
}
