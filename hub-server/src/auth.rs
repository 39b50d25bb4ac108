//! Who is calling, and what they may do. Tokens arrive as `Authorization: Bearer <token>` (the
//! HTTP API) or as the password of HTTP Basic (git, git-lfs); only their SHA-256 is stored.

use crate::app::AppState;
use crate::db::{Account, Role, Token};
use crate::error::ApiError;
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The authenticated user behind a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub account: Account,
    pub token: Token,
    pub orgs: Vec<(String, Role)>,
}

/// The caller of a request: anonymous or a token's user.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Shared, not copied: the read cache hands the same user to every request of a token.
    pub user: Option<std::sync::Arc<AuthUser>>,
    /// An inference grant reads one repo at one revision, nothing else.
    pub grant: Option<GrantScope>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantScope {
    pub repo_id: String,
    pub revision: String,
}

impl Caller {
    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    pub fn name(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.account.name.as_str())
    }

    /// The user's own role in a namespace, ignoring the token's scope.
    fn membership(&self, namespace: &str) -> Option<Role> {
        let user = self.user.as_ref()?;
        if user.account.name == namespace {
            return Some(Role::Admin);
        }
        user.orgs.iter().find(|(org, _)| org == namespace).map(|(_, role)| *role)
    }

    /// What this request may do in a namespace: the membership, capped by a read token.
    pub fn role_in(&self, namespace: &str) -> Option<Role> {
        let role = self.membership(namespace)?;
        let token_role = self.user.as_ref()?.token.role;
        Some(role.min(if token_role == Role::Read { Role::Read } else { Role::Admin }))
    }

    pub fn can_read_private(&self, namespace: &str) -> bool {
        self.membership(namespace).is_some()
    }

    /// Whether this caller may see a repo at all (a grant sees only its own).
    pub fn may_see_repo(&self, repo_id: &str) -> bool {
        self.grant.as_ref().is_none_or(|g| g.repo_id == repo_id)
    }

    /// A grant reads only its revision: any other answers as a revision that does not exist.
    pub fn check_revision(&self, rev: &str) -> Result<(), ApiError> {
        match &self.grant {
            Some(g) if g.revision != rev => Err(ApiError::revision_not_found(rev)),
            _ => Ok(()),
        }
    }

    /// Checks write access to a namespace, with an error that says what to do.
    pub fn require_write(&self, namespace: &str) -> Result<(), ApiError> {
        self.require(namespace, Role::Write)
    }

    /// Checks that this request may act with `needed` in a namespace.
    pub fn require(&self, namespace: &str, needed: Role) -> Result<(), ApiError> {
        let Some(user) = &self.user else {
            return Err(ApiError::unauthorized("You must be authenticated (pass a write access token) to do this"));
        };
        match self.membership(namespace) {
            Some(role) if role >= needed => {
                if user.token.role == Role::Read {
                    Err(ApiError::forbidden(format!(
                        "token '{}' is read-only; create a write token with `hub-server token create {} --role write`",
                        user.token.name, user.account.name
                    )))
                } else {
                    Ok(())
                }
            }
            _ => Err(ApiError::forbidden(format!("{} lacks {} access to namespace '{namespace}'", user.account.name, needed.as_str()))),
        }
    }

    /// Namespaces whose private repos this caller may list.
    pub fn visible_namespaces(&self) -> Vec<String> {
        match &self.user {
            None => Vec::new(),
            Some(u) => std::iter::once(u.account.name.clone()).chain(u.orgs.iter().map(|(o, _)| o.clone())).collect(),
        }
    }
}

/// A new access token: `hf_` and 34 random alphanumerics, like huggingface.co's.
pub fn generate_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let body: String = (0..34).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("hf_{body}")
}

/// Tokens carry 200 bits of randomness, so a fast hash is enough to store them.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("could not hash password: {e}"))
}

/// The token in an Authorization header, if any (empty bearer = anonymous, as hf-hub 0.4 sends).
fn token_from_header(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_, password) = decoded.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}

pub fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("Invalid credentials in Authorization header")
}

/// Prefix of the short-lived, read-only credentials the hub gives the inference worker to fetch a
/// private model for a web-session user (who has no token to forward).
const GRANT_PREFIX: &str = "hubgrant_";
const GRANT_TTL_SECS: i64 = 600;

/// A grant for the worker to read `repo_id` at `revision` (a commit id) as `user_id`.
pub fn inference_grant(secret: &[u8], user_id: i64, repo_id: &str, revision: &str) -> String {
    // Expiry on a 5-minute grid: the same grant for a while, so the worker's access cache hits.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let exp = (now / 300 + 1) * 300 + GRANT_TTL_SECS - 300;
    let sig = crate::lfs::sign(secret, &grant_claims(user_id, repo_id, revision), exp);
    format!("{GRANT_PREFIX}{user_id}_{repo_id}_{revision}_{exp}_{sig}")
}

fn grant_claims(user_id: i64, repo_id: &str, revision: &str) -> String {
    format!("inference-grant {user_id} {repo_id} {revision}")
}

async fn authenticate_grant(state: &AppState, grant: &str) -> Result<Caller, ApiError> {
    let parts: Vec<&str> = grant.split('_').collect();
    let [user, repo_id, revision, exp, sig] = parts[..] else { return Err(invalid_credentials()) };
    let (Ok(user_id), Ok(exp)) = (user.parse::<i64>(), exp.parse::<i64>()) else { return Err(invalid_credentials()) };
    if !crate::lfs::verify(&state.secret, &grant_claims(user_id, repo_id, revision), exp, sig) {
        return Err(invalid_credentials());
    }
    let mut caller = caller_for_user(state, user_id, "inference grant", Role::Read).await?.ok_or_else(invalid_credentials)?;
    caller.grant = Some(GrantScope { repo_id: repo_id.to_string(), revision: revision.to_string() });
    Ok(caller)
}

/// The caller a signed credential stands for (an inference grant, a Xet token): the account as it
/// is now, its current memberships, and the credential's role. None if the account is gone.
pub async fn caller_for_user(state: &AppState, user_id: i64, credential: &str, role: Role) -> Result<Option<Caller>, ApiError> {
    let Some(account) = state.db.find_account_by_id(user_id).await? else { return Ok(None) };
    let orgs = state.db.orgs_of(account.id).await?;
    let token = Token { id: 0, user_id, name: credential.into(), role };
    Ok(Some(Caller { user: Some(std::sync::Arc::new(AuthUser { account, token, orgs })), grant: None }))
}

pub async fn authenticate(state: &AppState, header: Option<&str>) -> Result<Caller, ApiError> {
    let Some(token) = header.and_then(token_from_header) else { return Ok(Caller::default()) };
    if let Some(grant) = token.strip_prefix(GRANT_PREFIX) {
        return authenticate_grant(state, grant).await;
    }
    let hash = hash_token(&token);
    let load = async {
        let Some((token, account)) = state.db.find_token(&hash).await? else { return Ok(None) };
        let orgs = state.db.orgs_of(account.id).await?;
        Ok::<_, ApiError>(Some(Caller { user: Some(std::sync::Arc::new(AuthUser { account, token, orgs })), grant: None }))
    };
    state.cache.remember_found(&state.cache.callers, hash.clone(), load).await?.ok_or_else(invalid_credentials)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let caller = authenticate(state, header).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_bearer_and_basic() {
        assert_eq!(token_from_header("Bearer hf_abc"), Some("hf_abc".into()));
        assert_eq!(token_from_header("Bearer "), None);
        assert_eq!(token_from_header("Bearer"), None);
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:hf_xyz");
        assert_eq!(token_from_header(&format!("Basic {basic}")), Some("hf_xyz".into()));
        assert!(generate_token().starts_with("hf_") && generate_token().len() == 37);
    }
}
