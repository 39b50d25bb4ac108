//! The Git LFS batch API, `POST /{ns}/{name}.git/info/lfs/objects/batch`, and its verify
//! action, `POST …/objects/verify`. Input: one selector byte (endpoint, caller, repo), then the
//! JSON body as sent.
//! Beyond the shared checks: a batch answer lists one entry per object asked for, and an upload
//! action never offers more parts than S3 takes.
#![no_main]

use hub_fuzz::{check, fail, hub, Call, PRIVATE_REPO, REPO};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(init: { hub(); }, |data: &[u8]| {
    let hub = hub();
    let Some((&sel, body)) = data.split_first() else { return };
    let verify = sel & 1 == 1;
    let repo = match (sel >> 1) % 4 {
        0 | 1 => REPO,
        2 => PRIVATE_REPO,
        _ => "alice/missing",
    };
    let token = match (sel >> 3) % 4 {
        0 | 1 => Some(&hub.alice),
        2 => Some(&hub.alice_read),
        _ => None,
    };
    let endpoint = if verify { "verify" } else { "batch" };
    let mut call = Call::post(format!("/{repo}.git/info/lfs/objects/{endpoint}"), body)
        .header("content-type", "application/vnd.git-lfs+json")
        .header("accept", "application/vnd.git-lfs+json");
    if let Some(t) = token {
        call = call.bearer(t);
    }
    let Some(reply) = hub.try_send(&call) else { return };
    check(&call, &reply);
    if verify || !reply.status.is_success() {
        return;
    }
    let Some(answer) = reply.json() else { fail("a batch answer that is not JSON", &call, Some(&reply)) };
    let asked = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["objects"].as_array().map(Vec::len));
    let listed = answer["objects"].as_array().map(Vec::len);
    if asked.is_some() && listed != asked {
        fail(&format!("asked about {asked:?} objects, the answer lists {listed:?}"), &call, Some(&reply));
    }
    for obj in answer["objects"].as_array().into_iter().flatten() {
        if let Some(parts) = obj["actions"]["upload"]["header"].as_object() {
            if parts.len() > 10_001 {
                fail(&format!("an upload action offers {} part URLs", parts.len() - 1), &call, Some(&reply));
            }
        }
    }
});
