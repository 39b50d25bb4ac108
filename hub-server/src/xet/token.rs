//! CAS access tokens: the hub signs `(repo, scope, user, expiry)`; the CAS honours a token until
//! it expires (hf_xet refreshes by clock and never retries a 401). Bound to the repo's stable
//! id, so a moved repo keeps its uploads.

use crate::lfs::{sign, verify};

const PREFIX: &str = "xet1_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasToken {
    pub repo_id: String,
    pub write: bool,
    /// The account the token was issued to; None for anonymous readers of public repos.
    pub user_id: Option<i64>,
    pub exp: i64,
}

fn claims(t: &CasToken) -> String {
    format!("xet-cas {} {} {}", t.repo_id, if t.write { "write" } else { "read" }, t.user_id.unwrap_or(0))
}

pub fn mint(secret: &[u8], t: &CasToken) -> String {
    let scope = if t.write { 'w' } else { 'r' };
    format!("{PREFIX}{}_{scope}_{}_{}_{}", t.repo_id, t.user_id.unwrap_or(0), t.exp, sign(secret, &claims(t), t.exp))
}

/// The token's claims, if it is ours, intact and unexpired.
pub fn check(secret: &[u8], token: &str) -> Option<CasToken> {
    let mut parts = token.strip_prefix(PREFIX)?.split('_');
    let (repo_id, scope, user, exp, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || repo_id.is_empty() || !repo_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let write = match scope {
        "w" => true,
        "r" => false,
        _ => return None,
    };
    let user: i64 = user.parse().ok()?;
    let t = CasToken { repo_id: repo_id.to_string(), write, user_id: (user != 0).then_some(user), exp: exp.parse().ok()? };
    verify(secret, &claims(&t), t.exp, sig).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_repo_scope_user_and_expiry() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
        let t = CasToken { repo_id: "abc123".into(), write: false, user_id: Some(7), exp };
        let s = mint(secret, &t);
        assert_eq!(check(secret, &s), Some(t.clone()));
        // Upgrading the scope, changing the repo or the user, or another key: refused.
        assert_eq!(check(secret, &s.replacen("_r_", "_w_", 1)), None);
        assert_eq!(check(secret, &s.replacen("abc123", "abc124", 1)), None);
        assert_eq!(check(secret, &s.replacen("_7_", "_8_", 1)), None);
        assert_eq!(check(b"another secret", &s), None);
        let old = CasToken { exp: exp - 1200, ..t };
        assert_eq!(check(secret, &mint(secret, &old)), None, "expired");
        assert_eq!(check(secret, "hf_notatoken"), None);
    }
}
