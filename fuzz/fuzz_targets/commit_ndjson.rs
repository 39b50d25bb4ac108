//! The NDJSON commit body: `POST /api/models/{ns}/{name}/commit/main`, one JSON object a line
//! (header, file, lfsFile, deletedFile, deletedFolder). Input: the body as sent.
//! Beyond the shared checks: a refused commit leaves main where it was; an accepted one moves
//! main to the commit it answers with.
#![no_main]

use hub_fuzz::{check, fail, hub, Call};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The repo commits go to (the fixture's `alice/fuzz` stays as the setup left it).
fn repo() -> &'static str {
    static REPO: OnceLock<String> = OnceLock::new();
    REPO.get_or_init(|| {
        let hub = hub();
        let repo = hub.create_repo("commits", false);
        // Something to delete, and the fixture's LFS and Xet content to point at.
        let lfs =
            serde_json::json!({"key": "lfsFile", "value": {"path": "lfs.bin", "oid": hub.fixture.lfs_oid, "size": hub.fixture.lfs.len()}});
        let r = hub.commit(
            &repo,
            &[hub_fuzz::header_line("start"), hub_fuzz::file_line("a.txt", b"a"), hub_fuzz::file_line("dir/b.txt", b"b"), lfs],
        );
        assert_eq!(r.status, 200, "setup: {r}");
        repo
    })
}

fuzz_target!(init: { repo(); }, |data: &[u8]| {
    let hub = hub();
    let repo = repo();
    let before = hub.head(repo);
    let call = Call::post(format!("/api/models/{repo}/commit/main"), data).bearer(&hub.alice);
    let Some(reply) = hub.try_send(&call) else { return };
    check(&call, &reply);
    let after = hub.head(repo);
    if reply.status.is_success() {
        let oid = reply.json().and_then(|v| v["commitOid"].as_str().map(str::to_string));
        if oid.as_deref() != Some(after.as_str()) {
            fail(&format!("an accepted commit left main at {after}, not at the commit it answered"), &call, Some(&reply));
        }
    } else if after != before {
        fail(&format!("a refused commit moved main from {before} to {after}"), &call, Some(&reply));
    }
});
