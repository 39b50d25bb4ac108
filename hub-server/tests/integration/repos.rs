//! Repos, privacy, moves, info, listing, tree and paths-info through the real router.
#![allow(clippy::unwrap_used)] // test bodies run through backend_tests!, outside #[test] fns

use crate::common::*;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

async fn a_private_repo_answers_exactly_as_a_missing_one(hub: TestHub) {
    let repo = hub.create_repo("secret", true).await;
    let r = hub.commit_lines(&repo, &[header_line("s"), file_line("s.txt", b"s")]).await;
    assert_eq!(r.status, StatusCode::OK);
    for url in [format!("/api/models/{repo}"), format!("/{repo}/resolve/main/s.txt"), format!("/api/models/{repo}/tree/main")] {
        for (token, status) in [(None, StatusCode::UNAUTHORIZED), (Some(hub.bob.as_str()), StatusCode::NOT_FOUND)] {
            let hidden = hub.get(&url, token).await;
            let missing = hub.get(&url.replace("secret", "never-existed"), token).await;
            assert_eq!(hidden.status, status, "{url}");
            assert_eq!(missing.status, status, "{url}");
            assert_eq!(hidden.header("x-error-code"), Some("RepoNotFound"));
            assert_eq!(hidden.body, missing.body);
        }
        assert_eq!(hub.get(&url, Some(&hub.alice)).await.status, StatusCode::OK, "{url}");
    }
    // Another user cannot write it, and learns nothing about it.
    let r = hub.call(Method::POST, &format!("/api/models/{repo}/commit/main"), Some(&hub.bob), format!("{}\n", header_line("x"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-error-code"), Some("RepoNotFound"));
    // Listing shows it to its owner only.
    let ids = |v: serde_json::Value| v.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert!(ids(hub.get("/api/models?author=alice", Some(&hub.alice)).await.json()).contains(&repo));
    assert!(!ids(hub.get("/api/models?author=alice", None).await.json()).contains(&repo));
    assert!(!ids(hub.get("/api/models?author=alice", Some(&hub.bob)).await.json()).contains(&repo));
    // Bad tokens are told so, not treated as anonymous.
    let r = hub.get("/api/whoami-v2", Some("hf_wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("x-error-message"), Some("Invalid credentials in Authorization header"));
}

async fn writes_need_the_right_role(hub: TestHub) {
    let repo = hub.create_repo("roles", false).await;
    let commit = format!("{}\n{}\n", header_line("x"), file_line("x.txt", b"x"));
    let url = format!("/api/models/{repo}/commit/main");
    assert_eq!(hub.call(Method::POST, &url, Some(&hub.bob), commit.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(hub.call(Method::POST, &url, Some(&hub.alice_read), commit.clone()).await.status, StatusCode::FORBIDDEN);
    assert_eq!(hub.call(Method::POST, &url, None, commit.clone()).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hub.files(&repo).await, [".gitattributes"]);
    let r = hub.post_json("/api/repos/create", Some(&hub.alice), json!({"name": "x", "organization": "bob"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Organisation members write according to their role.
    hub_server::accounts::create_org(&hub.state, "acme", "alice").await.unwrap();
    hub_server::accounts::add_member(&hub.state, "acme", "bob", hub_server::db::Role::Read).await.unwrap();
    let r = hub.post_json("/api/repos/create", Some(&hub.bob), json!({"name": "x", "organization": "acme"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    hub_server::accounts::add_member(&hub.state, "acme", "bob", hub_server::db::Role::Write).await.unwrap();
    let r = hub.post_json("/api/repos/create", Some(&hub.bob), json!({"name": "x", "organization": "acme", "private": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(hub.get("/api/models/acme/x", Some(&hub.alice)).await.status, StatusCode::OK);
    // Deleting needs admin in an organisation.
    let r = hub.call(Method::DELETE, "/api/repos/delete", Some(&hub.bob), json!({"name": "x", "organization": "acme"}).to_string()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let who = hub.get("/api/whoami-v2", Some(&hub.bob)).await.json();
    assert_eq!(who["orgs"][0]["name"], "acme");
    assert_eq!(who["orgs"][0]["roleInOrg"], "write");
}

async fn create_conflicts_carry_the_url_and_moves_redirect(hub: TestHub) {
    let repo = hub.create_repo("old", false).await;
    let r = hub.post_json("/api/repos/create", Some(&hub.alice), json!({"name": "old", "organization": null})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["url"], "http://hub.test/alice/old");
    hub.commit_lines(&repo, &[header_line("f"), file_line("f.txt", b"moved")]).await;
    let r = hub.post_json("/api/repos/move", Some(&hub.alice), json!({"fromRepo": repo, "toRepo": "alice/new", "type": "model"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = hub.get("/alice/old/resolve/main/f.txt?x=1", None).await;
    assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(r.header("location"), Some("/alice/new/resolve/main/f.txt?x=1"));
    let r = hub.get("/api/models/alice/old/revision/main", None).await;
    assert_eq!(r.header("location"), Some("/api/models/alice/new/revision/main"));
    assert_eq!(&hub.get("/alice/new/resolve/main/f.txt", None).await.body[..], b"moved");
    // A new repo may take the old name back.
    hub.create_repo("old", false).await;
    assert_eq!(hub.get("/api/models/alice/old", None).await.status, StatusCode::OK);
}

async fn info_reports_card_metadata_and_safetensors_parameters(hub: TestHub) {
    let repo = hub.create_repo("card", false).await;
    let header = br#"{"w":{"dtype":"F16","shape":[4,8],"data_offsets":[0,64]},"b":{"dtype":"F32","shape":[8],"data_offsets":[64,96]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend(vec![0u8; 96]);
    let readme =
        "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-classification\ntags:\n- sentiment\n---\n# Card\n";
    let r = hub
        .commit_lines(&repo, &[header_line("card"), file_line("README.md", readme.as_bytes()), file_line("model.safetensors", &st)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let info = hub.get(&format!("/api/models/{repo}?blobs=true"), None).await.json();
    assert_eq!(info["cardData"]["license"], "apache-2.0");
    assert_eq!(info["pipeline_tag"], "text-classification");
    assert_eq!(info["library_name"], "transformers");
    assert!(info["tags"].as_array().unwrap().contains(&json!("sentiment")));
    assert_eq!(info["safetensors"], json!({"parameters": {"F16": 32, "F32": 8}, "total": 40}));
    let created = info["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    let only = hub.get(&format!("/api/models/{repo}?expand=sha&expand=private"), None).await.json();
    let mut keys: Vec<_> = only.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["_id", "id", "private", "sha"]);
    let listed = hub.get("/api/models?filter=sentiment&pipeline_tag=text-classification", None).await.json();
    assert_eq!(listed[0]["id"], repo);
    let r = hub.post_json("/api/validate-yaml", None, json!({"content": "---\nbad: [yaml\n---\n", "repoType": "model"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["errors"][0]["message"].as_str().unwrap().contains("YAML"));
    let r = hub.call(Method::POST, "/api/validate-yaml", None, "garbage").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    r.json();
}

async fn listing_and_tree_paginate_with_absolute_links(hub: TestHub) {
    for i in 0..3 {
        hub.create_repo(&format!("page-{i}"), false).await;
    }
    let r = hub.get("/api/models?search=page&limit=2", None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let link = r.header("link").unwrap().to_string();
    assert!(link.starts_with("<http://hub.test/api/models?") && link.ends_with(">; rel=\"next\""), "{link}");
    let next = link.trim_start_matches("<http://hub.test").split('>').next().unwrap().to_string();
    let r = hub.get(&next, None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    assert!(r.header("link").is_none());

    let repo = "alice/page-0";
    let lines: Vec<_> = std::iter::once(header_line("many")).chain((0..5).map(|i| file_line(&format!("d/f{i}.txt"), b"x"))).collect();
    hub.commit_lines(repo, &lines).await;
    let mut seen = Vec::new();
    let mut url = format!("/api/models/{repo}/tree/main/d?limit=2&expand=true");
    loop {
        let r = hub.get(&url, None).await;
        for e in r.json().as_array().unwrap() {
            assert_eq!(e["lastCommit"]["title"], "many");
            seen.push(e["path"].as_str().unwrap().to_string());
        }
        match r.header("link") {
            Some(l) => url = l.trim_start_matches("<http://hub.test").split('>').next().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ["d/f0.txt", "d/f1.txt", "d/f2.txt", "d/f3.txt", "d/f4.txt"]);
    let r = hub.get(&format!("/api/models/{repo}/tree/main/missing"), None).await;
    assert_eq!(r.header("x-error-code"), Some("EntryNotFound"), "a missing folder is not a missing repo");
    // paths-info: form from Python, JSON from hf-hub 1.0.
    let form = hub
        .send(
            axum::http::Request::post(format!("/api/models/{repo}/paths-info/main"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("paths=d%2Ff1.txt&paths=d&paths=nope&expand=false"))
                .unwrap(),
        )
        .await
        .json();
    assert_eq!(form.as_array().unwrap().len(), 2);
    let json_body = hub
        .send(
            axum::http::Request::post(format!("/api/models/{repo}/paths-info/main"))
                .header("content-type", "application/json")
                .body(Body::from(json!({"paths": ["d/f1.txt"]}).to_string()))
                .unwrap(),
        )
        .await
        .json();
    assert_eq!(json_body[0]["type"], "file");
}

async fn pull_requests_and_super_squash(hub: TestHub) {
    let repo = hub.create_repo("pr", false).await;
    let body = format!("{}\n{}\n", header_line("proposal"), file_line("p.txt", b"p"));
    let r = hub.call(Method::POST, &format!("/api/models/{repo}/commit/main?create_pr=1"), Some(&hub.alice), body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["pullRequestUrl"], format!("http://hub.test/{repo}/discussions/1"));
    assert_eq!(hub.files(&repo).await, [".gitattributes"]);
    let refs = hub.get(&format!("/api/models/{repo}/refs?include_prs=1"), None).await.json();
    assert_eq!(refs["pullRequests"][0]["ref"], "refs/pr/1");
    let r = hub.get(&format!("/{repo}/resolve/refs%2Fpr%2F1/p.txt"), None).await;
    assert_eq!(&r.body[..], b"p");
    hub.commit_lines(&repo, &[header_line("two"), file_line("two.txt", b"2")]).await;
    let r = hub.post_json(&format!("/api/models/{repo}/super-squash/main"), Some(&hub.alice), json!({"message": "squashed"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let commits = hub.get(&format!("/api/models/{repo}/commits/main"), None).await.json();
    assert_eq!(commits.as_array().unwrap().len(), 1);
    assert_eq!(commits[0]["title"], "squashed");
    assert_eq!(hub.files(&repo).await, [".gitattributes", "two.txt"]);
}

/// A ref moved behind the database's back (a crash between the two) is picked up at start.
async fn metadata_catches_up_with_git(hub: TestHub) {
    let repo = hub.create_repo("behind", false).await;
    let readme = "---\npipeline_tag: summarization\n---\n# x\n";
    hub.commit_lines(&repo, &[header_line("card"), file_line("README.md", readme.as_bytes())]).await;
    let row = hub
        .state
        .db
        .find_repo(&hub_server::names::RepoName::new(hub_server::names::RepoType::Model, "alice", "behind").unwrap())
        .await
        .unwrap()
        .unwrap();
    // Simulate the crash: the database forgets the last head.
    hub.state.db.record_head(&row.id, "0000000000000000000000000000000000000000", &Default::default()).await.unwrap();
    assert!(hub.get("/api/models?pipeline_tag=summarization", None).await.json().as_array().unwrap().is_empty());
    assert_eq!(hub_server::repos::reconcile_heads(&hub.state).await.unwrap(), 1);
    assert_eq!(hub.get("/api/models?pipeline_tag=summarization", None).await.json()[0]["id"], repo.as_str());
    assert_eq!(hub_server::repos::reconcile_heads(&hub.state).await.unwrap(), 0);
}

/// Datasets and spaces live under their prefix: resolve, tree pages and git find them there
/// (and a model of the same name is another repo), and a moved dataset redirects within it.
async fn datasets_and_spaces_answer_under_their_prefix(hub: TestHub) {
    for (kind, prefix) in [("dataset", "datasets"), ("space", "spaces")] {
        let r = hub.post_json("/api/repos/create", Some(&hub.alice), json!({"name": "shared", "type": kind, "private": true})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
        let body: String = [header_line("data"), file_line("data/train.csv", format!("a,b\n{kind}\n").as_bytes())]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        let r = hub.call(Method::POST, &format!("/api/{prefix}/alice/shared/commit/main"), Some(&hub.alice), body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
        let r = hub.get(&format!("/{prefix}/alice/shared/resolve/main/data/train.csv"), Some(&hub.alice)).await;
        assert_eq!(r.status, StatusCode::OK, "{prefix}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.body, format!("a,b\n{kind}\n").as_bytes());
        assert_eq!(hub.get(&format!("/{prefix}/alice/shared/tree/main"), Some(&hub.alice)).await.status, StatusCode::OK);
        let r = hub.get(&format!("/{prefix}/alice/shared.git/info/refs?service=git-upload-pack"), Some(&hub.alice)).await;
        assert_eq!(r.status, StatusCode::OK, "git finds the {kind}");
    }
    assert_eq!(hub.get("/alice/shared/resolve/main/data/train.csv", Some(&hub.alice)).await.status, StatusCode::NOT_FOUND, "no such model");
    let r = hub
        .post_json("/api/repos/move", Some(&hub.alice), json!({"fromRepo": "alice/shared", "toRepo": "alice/moved", "type": "dataset"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let r = hub.get("/datasets/alice/shared/resolve/main/data/train.csv", Some(&hub.alice)).await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.header("location"), Some("/datasets/alice/moved/resolve/main/data/train.csv"));
}

backend_tests!(
    datasets_and_spaces_answer_under_their_prefix,
    metadata_catches_up_with_git,
    a_private_repo_answers_exactly_as_a_missing_one,
    writes_need_the_right_role,
    create_conflicts_carry_the_url_and_moves_redirect,
    info_reports_card_metadata_and_safetensors_parameters,
    listing_and_tree_paginate_with_absolute_links,
    pull_requests_and_super_squash
);
