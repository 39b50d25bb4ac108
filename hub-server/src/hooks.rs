//! Git hooks run by `git receive-pack` during a push, as `hub-server git-hook NAME`. The
//! pre-receive hook decides before any ref moves; its stderr reaches the pusher's terminal.

use crate::git::push_checks::{inspect_push, parse_updates};
use crate::storage::Storage;
use std::io::Read;
use std::path::Path;

/// Environment the hub passes to hooks.
pub const HOOK_BIN_ENV: &str = "HUB_HOOK_BIN";
pub const HOOK_STORAGE_ENV: &str = "HUB_HOOK_STORAGE_URL";

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
    let url = std::env::var(HOOK_STORAGE_ENV).map_err(|_| format!("{HOOK_STORAGE_ENV} is not set"))?;
    let storage = Storage::from_url(Some(&url), "objects".into()).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let mut missing = Vec::new();
    runtime.block_on(async {
        let mut checked = std::collections::HashSet::new();
        for p in &pointers {
            if !checked.insert(p.pointer.oid.clone()) {
                continue;
            }
            match storage.object_size(&p.pointer.oid).await {
                Ok(Some(size)) if size == p.pointer.size => {}
                Ok(_) => missing.push(format!("{} (LFS object {}, {} bytes)", p.path, p.pointer.oid, p.pointer.size)),
                Err(e) => missing.push(format!("{} (could not check: {e})", p.path)),
            }
        }
    });
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the hub does not have the LFS content of:\n  {}\nUpload it with `git lfs push --all origin` (and check that git-lfs is installed: `git lfs install`), then push again.",
        missing.join("\n  ")
    ))
}
