//! The wire contract, checked on the hub's real answers: every JSON body a client reads is put
//! through `hub_client::types::check_round_trip` as the type hub-client reads it with, so a key
//! the hub sends that the type would drop, rename or null is caught here. Requests are built
//! from the same types.
#![allow(clippy::unwrap_used)] // test bodies run through backend_tests!, outside #[test] fns

use crate::common::*;
use axum::http::{Method, StatusCode};
use hub_client::types::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The answer as `T`, after checking it is a 2xx (or `status`) and round-trips exactly.
fn typed<T: Serialize + DeserializeOwned>(r: &Reply, status: StatusCode) -> T {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    check_round_trip(&r.json()).unwrap_or_else(|e| panic!("the hub's answer breaks the contract: {e}"))
}

fn ok<T: Serialize + DeserializeOwned>(r: &Reply) -> T {
    typed(r, StatusCode::OK)
}

fn ndjson(lines: &[NdjsonLine]) -> String {
    lines.iter().map(|l| format!("{}\n", serde_json::to_string(l).unwrap())).collect()
}

/// A safetensors file with one F32 tensor of `n` values.
fn safetensors(n: usize) -> Vec<u8> {
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#, n * 4);
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, n * 4));
    out
}

fn inline(path: &str, data: &[u8]) -> NdjsonLine {
    use base64::Engine;
    NdjsonLine::File(NdjsonFile {
        path: path.into(),
        content: base64::engine::general_purpose::STANDARD.encode(data),
        encoding: Some("base64".into()),
    })
}

async fn every_answer_reads_as_its_type(hub: TestHub) {
    let me: WhoAmI = ok(&hub.get("/api/whoami-v2", Some(&hub.alice)).await);
    assert_eq!((me.name.as_str(), me.email.as_deref()), ("alice", Some("alice@example.org")));
    let bob: WhoAmI = ok(&hub.get("/api/whoami-v2", Some(&hub.bob)).await);
    assert_eq!(bob.email, None);

    // Repo management.
    let create = RepoRequest { private: Some(false), ..RepoRequest::for_id(RepoType::Model, "alice/wire") };
    let created: RepoUrl = ok(&hub.post_json("/api/repos/create", Some(&hub.alice), serde_json::to_value(&create).unwrap()).await);
    assert_eq!(created.url, "http://hub.test/alice/wire");
    let again: ErrorBody =
        typed(&hub.post_json("/api/repos/create", Some(&hub.alice), serde_json::to_value(&create).unwrap()).await, StatusCode::CONFLICT);
    assert_eq!(again.url.as_deref(), Some("http://hub.test/alice/wire"));
    let missing: ErrorBody = typed(&hub.get("/api/models/alice/nothing-here", Some(&hub.alice)).await, StatusCode::NOT_FOUND);
    assert_eq!(missing.error, "Repository not found");

    // Preupload and commit, with a card and a safetensors file the hub stores as LFS itself.
    let repo = "alice/wire";
    let pre = PreuploadRequest {
        files: vec![
            PreuploadFile { path: "config.json".into(), sample: "e30=".into(), size: 2 },
            PreuploadFile { path: "big.bin".into(), sample: "AAA=".into(), size: 2 },
        ],
        git_ignore: Some("*.log\n".into()),
    };
    let decided: PreuploadResponse =
        ok(&hub.post_json(&format!("/api/models/{repo}/preupload/main"), Some(&hub.alice), serde_json::to_value(&pre).unwrap()).await);
    assert_eq!(decided.files[1].upload_mode, UploadMode::Lfs);
    let card = "---\nlicense: mit\nlibrary_name: transformers\npipeline_tag: feature-extraction\ntags:\n- wire\n---\n# wire\n";
    let lines = [
        NdjsonLine::Header(NdjsonHeader { summary: Some("Add <files>".into()), description: Some(String::new()), parent_commit: None }),
        inline("README.md", card.as_bytes()),
        inline("config.json", b"{}"),
        inline("sub/w.safetensors", &safetensors(6)),
    ];
    let url = format!("/api/models/{repo}/commit/main");
    let commit: CommitResponse = ok(&hub.call(Method::POST, &url, Some(&hub.alice), ndjson(&lines)).await);
    assert_eq!(commit.commit_url, format!("http://hub.test/{repo}/commit/{}", commit.commit_oid));
    let pr_lines = [lines[0].clone(), NdjsonLine::DeletedFile(NdjsonPath { path: "config.json".into() })];
    let pr: CommitResponse = ok(&hub.call(Method::POST, &format!("{url}?create_pr=1"), Some(&hub.alice), ndjson(&pr_lines)).await);
    assert_eq!(pr.pr_num, Some(1));

    // Info in each form clients ask for.
    let base = format!("/api/models/{repo}");
    let info: RepoInfo = ok(&hub.get(&base, None).await);
    assert_eq!(info.sha.as_deref(), Some(commit.commit_oid.as_str()));
    assert_eq!(info.pipeline_tag, Some(Some("feature-extraction".into())));
    assert_eq!(info.safetensors.as_ref().map(|s| s.total), Some(6));
    let blobs: RepoInfo = ok(&hub.get(&format!("{base}/revision/main?blobs=true"), None).await);
    let st = blobs.siblings.unwrap().into_iter().find(|s| s.rfilename == "sub/w.safetensors").unwrap();
    assert_eq!(st.lfs.unwrap().size, safetensors(6).len() as u64);
    let expanded: RepoInfo = ok(&hub.get(&format!("{base}?expand=sha&expand=private"), None).await);
    assert_eq!((expanded.private, expanded.tags), (Some(false), None));
    for query in ["", "?full=true", "?cardData=true", "?expand=sha&expand=downloads", "?author=nobody-at-all"] {
        let _: Vec<RepoInfo> = ok(&hub.get(&format!("/api/models{query}"), None).await);
    }
    let dataset = RepoRequest::for_id(RepoType::Dataset, "alice/wire-data");
    let _: RepoUrl = ok(&hub.post_json("/api/repos/create", Some(&hub.alice), serde_json::to_value(&dataset).unwrap()).await);
    let data_info: RepoInfo = ok(&hub.get("/api/datasets/alice/wire-data", None).await);
    assert_eq!(data_info.library_name, None);

    // Trees, paths-info, refs, history.
    let tree: Vec<TreeEntry> = ok(&hub.get(&format!("{base}/tree/main?recursive=true&expand=true"), None).await);
    assert!(tree.iter().all(|e| e.last_commit.is_some()) && tree.iter().any(TreeEntry::is_dir));
    let _: Vec<TreeEntry> = ok(&hub.get(&format!("{base}/tree/main/sub"), None).await);
    let form = "paths=config.json&paths=sub&paths=sub%2Fw.safetensors&expand=false";
    let paths: Vec<TreeEntry> = ok(&hub.call(Method::POST, &format!("{base}/paths-info/main"), None, form).await);
    assert_eq!(paths.len(), 3);
    let json_req = PathsInfoRequest { paths: vec!["README.md".into()], expand: Some(true) };
    let paths: Vec<TreeEntry> = ok(&hub
        .send(
            axum::http::Request::post(format!("{base}/paths-info/main"))
                .header("content-type", "application/json")
                .body(serde_json::to_string(&json_req).unwrap().into())
                .unwrap(),
        )
        .await);
    assert!(paths[0].last_commit.is_some());
    let branch = BranchRequest { starting_point: Some(commit.commit_oid.clone()) };
    let _: Empty = ok(&hub.post_json(&format!("{base}/branch/dev"), Some(&hub.alice), serde_json::to_value(&branch).unwrap()).await);
    let tag = TagRequest { tag: "v1".into(), message: Some("first".into()) };
    let _: Empty = ok(&hub.post_json(&format!("{base}/tag/main"), Some(&hub.alice), serde_json::to_value(&tag).unwrap()).await);
    let refs: GitRefs = ok(&hub.get(&format!("{base}/refs"), None).await);
    assert_eq!((refs.branches.len(), refs.tags.len(), refs.pull_requests), (2, 1, None));
    let refs: GitRefs = ok(&hub.get(&format!("{base}/refs?include_prs=1"), None).await);
    assert_eq!(refs.pull_requests.unwrap()[0].name, "refs/pr/1");
    let history: Vec<GitCommitInfo> = ok(&hub.get(&format!("{base}/commits/main?expand%5B%5D=formatted"), None).await);
    assert_eq!(history[0].formatted.as_ref().unwrap().title, "Add &lt;files&gt;");
    let _: Vec<GitCommitInfo> = ok(&hub.get(&format!("{base}/commits/main"), None).await);
    let squash = SquashRequest { message: Some("squashed".into()) };
    let _: CommitOid =
        ok(&hub.post_json(&format!("{base}/super-squash/dev"), Some(&hub.alice), serde_json::to_value(&squash).unwrap()).await);
    let _: Empty = ok(&hub.call(Method::DELETE, &format!("{base}/branch/dev"), Some(&hub.alice), "").await);
    let _: Empty = ok(&hub.call(Method::DELETE, &format!("{base}/tag/v1"), Some(&hub.alice), "").await);
    let _: Empty = ok(&hub.get(&format!("{base}/auth-check"), None).await);

    // The LFS batch API: a new object (basic), one too big for a single PUT (multipart), one
    // the repo holds, a bad one; then the upload, its verify and a download batch.
    let data = b"wire bytes".to_vec();
    let oid = sha256_hex(&data);
    let held_oid = sha256_hex(&safetensors(6));
    let spec = |oid: &str, size: i64| LfsObjectSpec { oid: oid.into(), size };
    let batch = LfsBatchRequest {
        operation: "upload".into(),
        transfers: vec!["basic".into(), "multipart".into()],
        objects: vec![
            spec(&oid, data.len() as i64),
            spec(&"b".repeat(64), 20 << 20),
            spec(&held_oid, safetensors(6).len() as i64),
            spec("nope", 1),
        ],
        hash_algo: Some("sha256".into()),
        git_ref: Some(LfsRef { name: "main".into() }),
    };
    let batch_url = format!("/{repo}.git/info/lfs/objects/batch");
    let answer: LfsBatchResponse = ok(&hub.post_json(&batch_url, Some(&hub.alice), serde_json::to_value(&batch).unwrap()).await);
    assert_eq!(answer.transfer, "multipart");
    let [basic, multipart, held, bad] = &answer.objects[..] else { panic!("{answer:?}") };
    assert!(multipart.actions.as_ref().unwrap().upload.as_ref().unwrap().chunk_size().is_some());
    assert_eq!((held.actions.is_none(), bad.error.as_ref().map(|e| e.code)), (true, Some(422)));
    let actions = basic.actions.as_ref().unwrap();
    let put = actions.upload.as_ref().unwrap().href.strip_prefix("http://hub.test").unwrap();
    let _: Empty = ok(&hub.call(Method::PUT, put, None, data.clone()).await);
    let verify = actions.verify.as_ref().unwrap().href.strip_prefix("http://hub.test").unwrap();
    let body = LfsVerifyRequest { oid: oid.clone(), size: data.len() as u64 };
    let _: LfsVerified = ok(&hub.post_json(verify, Some(&hub.alice), serde_json::to_value(&body).unwrap()).await);
    let download =
        LfsBatchRequest { operation: "download".into(), objects: vec![spec(&oid, data.len() as i64), spec(&"c".repeat(64), 1)], ..batch };
    let answer: LfsBatchResponse = ok(&hub.post_json(&batch_url, Some(&hub.alice), serde_json::to_value(&download).unwrap()).await);
    assert!(answer.objects[0].actions.as_ref().unwrap().download.is_some());
    assert_eq!(answer.objects[1].error.as_ref().map(|e| e.code), Some(404));

    // The card validator, settings, move and delete.
    let yaml = ValidateYamlRequest { content: card.into(), repo_type: Some("model".into()) };
    let _: YamlValidation = ok(&hub.post_json("/api/validate-yaml", None, serde_json::to_value(&yaml).unwrap()).await);
    let bad_yaml = ValidateYamlRequest { content: "---\n[: x\n---\n".into(), repo_type: None };
    let refused: ErrorBody =
        typed(&hub.post_json("/api/validate-yaml", None, serde_json::to_value(&bad_yaml).unwrap()).await, StatusCode::BAD_REQUEST);
    assert_eq!(refused.errors.map(|e| e.len()), Some(1));
    let _: AgentHarnesses = ok(&hub.get("/api/agent-harnesses", None).await);
    let settings = SettingsRequest { visibility: Some("private".into()), ..Default::default() };
    let now: RepoSettings =
        ok(&hub.call(Method::PUT, &format!("{base}/settings"), Some(&hub.alice), serde_json::to_string(&settings).unwrap()).await);
    assert!(now.private);
    let mv = MoveRequest { from_repo: repo.into(), to_repo: "alice/wire2".into(), repo_type: Some("model".into()) };
    let moved: RepoUrl = ok(&hub.post_json("/api/repos/move", Some(&hub.alice), serde_json::to_value(&mv).unwrap()).await);
    assert_eq!(moved.url, "http://hub.test/alice/wire2");
    let delete = RepoRequest::for_id(RepoType::Model, "alice/wire2");
    let _: Empty = ok(&hub.call(Method::DELETE, "/api/repos/delete", Some(&hub.alice), serde_json::to_string(&delete).unwrap()).await);
}

backend_tests!(every_answer_reads_as_its_type);
