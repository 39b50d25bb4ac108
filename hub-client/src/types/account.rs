//! `GET /api/whoami-v2`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// `user`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The username: clients use it as the default namespace.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullname: Option<String>,
    /// `null` when the account gave none.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(rename = "emailVerified", default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(rename = "isPro", default, skip_serializing_if = "Option::is_none")]
    pub is_pro: Option<bool>,
    #[serde(rename = "canPay", default, skip_serializing_if = "Option::is_none")]
    pub can_pay: Option<bool>,
    #[serde(rename = "avatarUrl", default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// Always present (the `hf` CLI iterates it).
    #[serde(default)]
    pub orgs: Vec<OrgMembership>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<WhoAmIAuth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMembership {
    /// `org`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullname: Option<String>,
    /// `read`, `write` or `admin`.
    #[serde(rename = "roleInOrg", default, skip_serializing_if = "Option::is_none")]
    pub role_in_org: Option<String>,
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmIAuth {
    /// `access_token`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "accessToken", default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<AccessTokenInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenInfo {
    /// The token's name (`login()` stores the token under it).
    #[serde(rename = "displayName")]
    pub display_name: String,
    /// `read`, `write` (or `fineGrained` on huggingface.co).
    pub role: String,
}
