//! Repo names and file paths: random strings in the URL path segments of resolve, tree, blob and
//! paths-info, in commit `path` fields and in `/api/repos/create` names. Input: one selector
//! byte (surface, segment, encoding), then the string.
//! Beyond the shared checks: a refused commit moves nothing; a repo that create accepted reads
//! back under its name and deletes.
#![no_main]

use axum::http::Method;
use hub_fuzz::{check, encode_segment, fail, file_line, header_line, hub, Call, REPO};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::sync::OnceLock;

fn commit_repo() -> &'static str {
    static REPO: OnceLock<String> = OnceLock::new();
    REPO.get_or_init(|| hub().create_repo("paths", false))
}

fuzz_target!(init: { commit_repo(); }, |data: &[u8]| {
    let hub = hub();
    let Some((&sel, s)) = data.split_first() else { return };
    // Raw: the bytes go into the URI as they are (when they make one); encoded: every byte
    // percent-encoded, so the hub's decoder sees arbitrary bytes.
    let seg = if sel & 0x80 != 0 { String::from_utf8_lossy(s).into_owned() } else { encode_segment(s) };
    let text = String::from_utf8_lossy(s).into_owned();
    let (ns, name) = REPO.split_once('/').unwrap();
    let surface = (sel & 0x7f) % 12;
    let call = match surface {
        // The fuzzed string as the file path, then as the revision, of each read route.
        0 => Call::get(format!("/{REPO}/resolve/main/{seg}")),
        1 => Call::new(Method::HEAD, format!("/{REPO}/resolve/main/{seg}")),
        2 => Call::get(format!("/api/models/{REPO}/tree/main/{seg}")),
        3 => Call::get(format!("/{REPO}/blob/main/{seg}")),
        4 => Call::get(format!("/{REPO}/resolve/{seg}/small.txt")),
        5 => Call::get(format!("/api/models/{REPO}/tree/{seg}")),
        // As the namespace or the repo name.
        6 => Call::get(format!("/{seg}/{name}/resolve/main/small.txt")),
        7 => Call::get(format!("/api/models/{ns}/{seg}")),
        8 => Call::get(format!("/{ns}/{seg}")),
        // paths-info, form-encoded and JSON.
        9 => Call::post(format!("/api/models/{REPO}/paths-info/main"), format!("paths={seg}&expand=true"))
            .header("content-type", "application/x-www-form-urlencoded"),
        10 => {
            let repo = commit_repo();
            let before = hub.head(repo);
            let body = format!("{}\n{}\n", header_line("path"), file_line(&text, b"x"));
            let call = Call::post(format!("/api/models/{repo}/commit/main"), body).bearer(&hub.alice);
            let Some(r) = hub.try_send(&call) else { return };
            check(&call, &r);
            if !r.status.is_success() && hub.head(repo) != before {
                fail("a refused commit moved main", &call, Some(&r));
            }
            return;
        }
        _ => {
            let body = json!({"name": text, "organization": if sel & 0x40 != 0 { "alice" } else { "bob" }, "private": sel & 0x20 != 0});
            let call = Call::post("/api/repos/create", body.to_string()).bearer(&hub.alice);
            let Some(r) = hub.try_send(&call) else { return };
            check(&call, &r);
            if r.status.is_success() {
                let id = r.json().and_then(|v| v["id"].as_str().map(str::to_string)).unwrap_or_default();
                let info = Call::get(format!("/api/models/{id}")).bearer(&hub.alice);
                let r2 = hub.send(&info);
                check(&info, &r2);
                if r2.status != 200 {
                    fail(&format!("a repo create accepted ({id}) does not read back"), &call, Some(&r2));
                }
                let del = Call::new(Method::DELETE, "/api/repos/delete")
                    .body(json!({"name": text, "organization": "alice"}).to_string())
                    .bearer(&hub.alice);
                let r3 = hub.send(&del);
                check(&del, &r3);
                if r3.status != 200 {
                    fail("a repo create accepted does not delete", &del, Some(&r3));
                }
            }
            return;
        }
    };
    let call = if sel & 0x40 != 0 { call.bearer(&hub.alice) } else { call };
    let Some(r) = hub.try_send(&call) else { return };
    check(&call, &r);
});
