//! Card YAML: `POST /api/validate-yaml` with `{"content": "---\n<yaml>\n---\n"}`, and README.md
//! committed with that front matter, then read back through `GET /api/models/{id}` and the
//! repo's web page `/{id}`. Input: one selector byte, then the YAML text (bytes that are not
//! UTF-8 are replaced, as a JSON client would have to).
#![no_main]

use hub_fuzz::{check, fail, file_line, header_line, hub, Call};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn repo() -> &'static str {
    static REPO: OnceLock<String> = OnceLock::new();
    REPO.get_or_init(|| hub().create_repo("card", false))
}

fuzz_target!(init: { repo(); }, |data: &[u8]| {
    let hub = hub();
    let Some((&sel, yaml)) = data.split_first() else { return };
    let yaml = String::from_utf8_lossy(yaml);
    // Mostly well-formed front matter; sometimes the input is the whole README.
    let readme = if sel & 0x80 == 0 { format!("---\n{yaml}\n---\n# Card\n") } else { yaml.into_owned() };
    if sel & 1 == 0 {
        let body = serde_json::json!({"content": readme, "repoType": "model"}).to_string();
        let call = Call::post("/api/validate-yaml", body).bearer(&hub.alice);
        let Some(r) = hub.try_send(&call) else { return };
        check(&call, &r);
        if !(r.status == 200 || r.status == 400) || r.json().is_none() {
            fail("validate-yaml must answer JSON, 200 or 400", &call, Some(&r));
        }
        return;
    }
    let repo = repo();
    let before = hub.head(repo);
    let body: String = [header_line("card"), file_line("README.md", readme.as_bytes())].iter().map(|l| format!("{l}\n")).collect();
    let call = Call::post(format!("/api/models/{repo}/commit/main"), body).bearer(&hub.alice);
    let Some(r) = hub.try_send(&call) else { return };
    check(&call, &r);
    if !r.status.is_success() && hub.head(repo) != before {
        fail("a refused commit moved main", &call, Some(&r));
    }
    for read in [Call::get(format!("/api/models/{repo}")), Call::get(format!("/{repo}")), Call::get(format!("/{repo}/blob/main/README.md"))] {
        let r = hub.send(&read);
        check(&read, &r);
        if r.status != 200 {
            fail("a repo whose README was just written does not read back", &read, Some(&r));
        }
    }
});
