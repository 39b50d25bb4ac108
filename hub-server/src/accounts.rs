//! Creating users, organisations, memberships and tokens (the CLI and, later, the web UI).

use crate::app::AppState;
use crate::auth::{generate_token, hash_password, hash_token};
use crate::db::{is_unique_violation, Account, Role};
use crate::names::validate_name;

/// Top-level paths the hub itself serves: an account of that name would be shadowed by them.
const RESERVED: &[&str] =
    &["api", "xet", "lfs", "static", "models", "datasets", "spaces", "settings", "login", "logout", "join", "new", "health", "v1"];

fn check_account_name(kind: &str, name: &str) -> anyhow::Result<()> {
    validate_name(kind, name).map_err(|e| anyhow::anyhow!(e.message))?;
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        anyhow::bail!("the name {name:?} is reserved by the hub");
    }
    Ok(())
}

pub async fn create_user(state: &AppState, name: &str, email: Option<&str>, password: Option<&str>) -> anyhow::Result<Account> {
    check_account_name("user", name)?;
    let hash = password.map(hash_password).transpose()?;
    match state.db.create_account(name, false, email, hash.as_deref()).await {
        Err(e) if is_unique_violation(&e) => anyhow::bail!("the name {name:?} is already taken by a user or organisation"),
        other => Ok(other?),
    }
}

pub async fn create_org(state: &AppState, name: &str, owner: &str) -> anyhow::Result<Account> {
    check_account_name("organisation", name)?;
    let owner = find_user(state, owner).await?;
    let org = match state.db.create_account(name, true, None, None).await {
        Err(e) if is_unique_violation(&e) => anyhow::bail!("the name {name:?} is already taken by a user or organisation"),
        other => other?,
    };
    state.db.set_member(org.id, owner.id, Role::Admin).await?;
    // Memberships are part of a cached caller (read_cache.rs).
    state.cache.epoch.bump();
    Ok(org)
}

pub async fn add_member(state: &AppState, org: &str, user: &str, role: Role) -> anyhow::Result<()> {
    let org = state.db.find_account(org).await?.filter(|a| a.is_org).ok_or_else(|| anyhow::anyhow!("no organisation named {org:?}"))?;
    let user = find_user(state, user).await?;
    state.db.set_member(org.id, user.id, role).await?;
    state.cache.epoch.bump();
    Ok(())
}

async fn find_user(state: &AppState, name: &str) -> anyhow::Result<Account> {
    state
        .db
        .find_account(name)
        .await?
        .filter(|a| !a.is_org)
        .ok_or_else(|| anyhow::anyhow!("no user named {name:?}; create one with `hub-server user create {name}`"))
}

/// Creates an access token and returns it: the only time it is ever shown.
pub async fn create_token(state: &AppState, user: &str, name: &str, role: Role) -> anyhow::Result<String> {
    if role == Role::Admin {
        anyhow::bail!("a token's role is read or write");
    }
    let user = find_user(state, user).await?;
    let token = generate_token();
    state.db.create_token(user.id, name, role, &hash_token(&token)).await?;
    Ok(token)
}
