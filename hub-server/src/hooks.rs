//! Git hooks run by `git receive-pack` during a push, as `hub-server git-hook NAME`. The
//! pre-receive hook decides before any ref moves; its stderr reaches the pusher's terminal.

use crate::db::Db;
use crate::git::push_checks::{inspect_push, parse_updates};
use std::io::Read;
use std::path::Path;

/// Environment the hub passes to hooks.
pub const HOOK_BIN_ENV: &str = "HUB_HOOK_BIN";
pub const HOOK_DATABASE_ENV: &str = "HUB_HOOK_DATABASE_URL";
/// The pushed repo's id, and the namespaces whose private repos the pusher can read.
pub const HOOK_REPO_ENV: &str = "HUB_HOOK_REPO_ID";
pub const HOOK_NAMESPACES_ENV: &str = "HUB_HOOK_NAMESPACES";

const PRE_RECEIVE: &str =
    "#!/bin/sh\n# Installed by hub-server: checks pushes before refs move.\nexec \"$HUB_HOOK_BIN\" git-hook pre-receive\n";

/// Writes the hooks directory (identical for every replica sharing it).
pub fn install(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("pre-receive");
    if std::fs::read_to_string(&path).is_ok_and(|c| c == PRE_RECEIVE) {
        return Ok(());
    }
    let tmp = dir.join(format!(".pre-receive.{}", std::process::id()));
    std::fs::write(&tmp, PRE_RECEIVE)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(tmp, path)
}

/// Runs a hook; returns the process exit code.
pub fn run(name: &str) -> i32 {
    match name {
        "pre-receive" => match pre_receive() {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("hub: push refused: {message}");
                1
            }
        },
        other => {
            eprintln!("hub: unknown hook {other}");
            1
        }
    }
}

fn pre_receive() -> Result<(), String> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| e.to_string())?;
    let updates = parse_updates(&input)?;
    // GIT_DIR and the quarantine's object directories come from receive-pack.
    let repo = git2::Repository::open_from_env().map_err(|e| format!("cannot open the repository: {e}"))?;
    let default_ref = crate::git::default_branch(&repo);
    let pointers = inspect_push(&repo, &updates, &default_ref)?;
    if pointers.is_empty() {
        return Ok(());
    }
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let (db_url, repo_id) = (env(HOOK_DATABASE_ENV)?, env(HOOK_REPO_ENV)?);
    let namespaces: Vec<String> = env(HOOK_NAMESPACES_ENV)?.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let missing = runtime.block_on(async {
        let db = Db::connect(&db_url, std::time::Duration::from_secs(30)).await.map_err(|e| format!("cannot open the database: {e}"))?;
        let mut missing = Vec::new();
        let mut checked = std::collections::HashSet::new();
        for p in &pointers {
            if !checked.insert(p.pointer.oid.clone()) {
                continue;
            }
            match admit(&db, &repo_id, &namespaces, &p.pointer).await {
                Ok(true) => {}
                Ok(false) => missing.push(format!("{} (LFS object {}, {} bytes)", p.path, p.pointer.oid, p.pointer.size)),
                Err(e) => missing.push(format!("{} (could not check: {e})", p.path)),
            }
        }
        Ok::<_, String>(missing)
    })?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the hub does not have the LFS content of:\n  {}\nUpload it with `git lfs push --all origin` (and check that git-lfs is installed: `git lfs install`), then push again.",
        missing.join("\n  ")
    ))
}

/// Whether a pushed pointer may enter the repo: the repo holds its content (git-lfs uploads
/// before pushing), or the pusher can read a repo that holds it, hashed by the hub (then the
/// repo holds it from now on). Anything else answers as content the hub does not have.
async fn admit(db: &Db, repo_id: &str, namespaces: &[String], pointer: &crate::git::LfsPointer) -> Result<bool, sqlx::Error> {
    if let Some(held) = db.held_object(repo_id, &pointer.oid).await? {
        return Ok(held.size == pointer.size);
    }
    for (obj, verified) in db.readable_holders(&pointer.oid, namespaces).await? {
        if verified && obj.size == pointer.size {
            db.record_object(repo_id, &obj).await?;
            return Ok(true);
        }
    }
    Ok(false)
}
