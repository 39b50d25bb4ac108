//! git clone and push over smart HTTP against a served hub, with the refusals a pusher sees.
#![allow(clippy::unwrap_used)] // test bodies run through backend_tests!, outside #[test] fns

use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;
use std::path::PathBuf;

struct Workspace {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    clone: PathBuf,
    push_url: String,
}

impl Workspace {
    async fn clone(hub: &TestHub, base: &str, repo: &str) -> Workspace {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let clone = tmp.path().join("clone");
        let url = format!("{base}/{repo}");
        let (ok, out) = git(&home, tmp.path(), &["clone", &url, clone.to_str().unwrap()]);
        assert!(ok, "clone failed: {out}");
        let push_url = url.replacen("http://", &format!("http://alice:{}@", hub.alice), 1);
        Workspace { _tmp: tmp, home, clone, push_url }
    }

    fn write(&self, path: &str, data: &[u8]) {
        let p = self.clone.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn git(&self, args: &[&str]) -> (bool, String) {
        git(&self.home, &self.clone, args)
    }

    fn commit(&self, message: &str) {
        let (ok, out) = self.git(&["add", "-A"]);
        assert!(ok, "{out}");
        let (ok, out) = self.git(&["commit", "-q", "-m", message]);
        assert!(ok, "{out}");
    }

    fn push(&self, refspec: &str) -> (bool, String) {
        self.git(&["push", &self.push_url, refspec])
    }

    fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).1.trim().to_string()
    }
}

fn pointer(oid: &str, size: usize) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n")
}

async fn push_is_served_by_the_api_at_once(hub: TestHub) {
    let base = hub.serve().await;
    let repo = hub.create_repo("pushed", false).await;
    let ws = Workspace::clone(&hub, &base, &repo).await;
    ws.write("README.md", b"---\npipeline_tag: fill-mask\nlicense: mit\n---\n# Pushed\n");
    ws.write("config.json", b"{\"model_type\": \"bert\"}\n");
    ws.commit("Add a card over git");
    let (ok, out) = ws.push("HEAD:main");
    assert!(ok, "{out}");
    let info = hub.get(&format!("/api/models/{repo}"), None).await.json();
    assert_eq!(info["sha"], ws.head());
    assert_eq!(info["pipeline_tag"], "fill-mask");
    assert_eq!(info["cardData"]["license"], "mit");
    let commits = hub.get(&format!("/api/models/{repo}/commits/main"), None).await.json();
    assert_eq!(commits[0]["title"], "Add a card over git");
    let listed = hub.get("/api/models?pipeline_tag=fill-mask", None).await.json();
    assert_eq!(listed[0]["id"], repo.as_str(), "listing metadata follows pushes too");
    assert_eq!(&hub.get(&format!("/{repo}/resolve/main/config.json"), None).await.body[..], b"{\"model_type\": \"bert\"}\n");
    // And what the API commits, git fetches.
    hub.commit_lines(&repo, &[header_line("api side"), file_line("api.txt", b"from the API")]).await;
    let (ok, out) = ws.git(&["pull", "-q", "--ff-only", "origin", "main"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read(ws.clone.join("api.txt")).unwrap(), b"from the API");
}

async fn pushes_that_break_the_rules_are_refused(hub: TestHub) {
    let base = hub.serve().await;
    let repo = hub.create_repo("rules", false).await;
    let before = hub.head_sha(&repo).await;
    let ws = Workspace::clone(&hub, &base, &repo).await;

    // An LFS pointer whose object the hub does not have.
    let missing = "e".repeat(64);
    ws.write("model.safetensors", pointer(&missing, 1234).as_bytes());
    ws.commit("pointer without content");
    let (ok, out) = ws.push("HEAD:main");
    assert!(!ok);
    assert!(out.contains("git lfs push --all"), "{out}");
    assert!(out.contains("model.safetensors"), "{out}");
    assert_eq!(hub.head_sha(&repo).await, before);

    // Once the object is uploaded (through the LFS batch API), the same push goes through.
    let content = vec![3u8; 1234];
    let oid = sha256_hex(&content);
    ws.write("model.safetensors", pointer(&oid, content.len()).as_bytes());
    ws.git(&["commit", "-q", "-a", "--amend", "-m", "pointer with content"]);
    let (ok, _) = ws.push("HEAD:main");
    assert!(!ok, "not uploaded yet");
    let batch = hub
        .post_json(
            &format!("/{repo}.git/info/lfs/objects/batch"),
            Some(&hub.alice),
            json!({"operation": "upload", "objects": [{"oid": oid, "size": content.len()}]}),
        )
        .await
        .json();
    let href = batch["objects"][0]["actions"]["upload"]["href"].as_str().unwrap().replace("http://hub.test", "");
    assert_eq!(hub.call(axum::http::Method::PUT, &href, None, content.clone()).await.status, StatusCode::OK);
    let (ok, out) = ws.push("HEAD:main");
    assert!(ok, "{out}");
    assert_eq!(&hub.get(&format!("/{repo}/resolve/main/model.safetensors"), None).await.body[..], &content[..]);

    // A large file not tracked by git-lfs.
    let head = hub.head_sha(&repo).await;
    ws.write("big.txt", &vec![b'x'; 11 * 1024 * 1024]);
    ws.commit("too big for git");
    let (ok, out) = ws.push("HEAD:main");
    assert!(!ok);
    assert!(out.contains("big.txt") && out.contains("git-lfs") && out.contains("10 MiB"), "{out}");
    assert_eq!(hub.head_sha(&repo).await, head);
    ws.git(&["reset", "-q", "--hard", "HEAD~1"]);

    // Deleting the default branch.
    let (ok, out) = ws.push(":main");
    assert!(!ok);
    assert!(out.contains("deleting the default branch 'main' is not allowed"), "{out}");
    assert_eq!(hub.head_sha(&repo).await, head);
    // Other branches may come and go.
    let (ok, out) = ws.push("HEAD:refs/heads/dev");
    assert!(ok, "{out}");
    let (ok, out) = ws.push(":dev");
    assert!(ok, "{out}");
}

async fn credentials_are_required_as_the_repo_says(hub: TestHub) {
    let base = hub.serve().await;
    let public = hub.create_repo("open", false).await;
    let ws = Workspace::clone(&hub, &base, &public).await;
    ws.write("x.txt", b"x");
    ws.commit("anonymous");
    let (ok, _) = ws.git(&["push", "origin", "HEAD:main"]);
    assert!(!ok, "anonymous pushes are refused");
    let bob_url = ws.push_url.replace(&format!("alice:{}", hub.alice), &format!("bob:{}", hub.bob));
    let (ok, out) = ws.git(&["push", &bob_url, "HEAD:main"]);
    assert!(!ok, "another user cannot push: {out}");
    assert_eq!(hub.files(&public).await, [".gitattributes"]);

    let private = hub.create_repo("closed", true).await;
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _) = git(tmp.path(), tmp.path(), &["clone", &format!("{base}/{private}"), "anon"]);
    assert!(!ok, "a private repo needs a token");
    let with_token = format!("{base}/{private}").replacen("http://", &format!("http://alice:{}@", hub.alice), 1);
    let (ok, out) = git(tmp.path(), tmp.path(), &["clone", &with_token, "mine"]);
    assert!(ok, "{out}");
    let (ok, out) = git(tmp.path(), tmp.path(), &["clone", &format!("{base}/{private}.git"), "anon2"]);
    assert!(!ok, "{out}");
}

/// A push and API commits to the same branch at the same time: both land, or the loser gets
/// a clean rejection and nothing half-applied.
async fn concurrent_push_and_api_commits(hub: TestHub) {
    let hub = std::sync::Arc::new(hub);
    let base = hub.serve().await;
    let repo = hub.create_repo("race", false).await;
    for round in 0..3 {
        let ws = Workspace::clone(&hub, &base, &repo).await;
        ws.write(&format!("git-{round}.txt"), b"over git");
        ws.commit(&format!("git {round}"));
        let pushed = ws.head();
        let push = tokio::task::spawn_blocking(move || {
            let r = ws.push("HEAD:main");
            (r, ws)
        });
        let mut api_commits = Vec::new();
        for i in 0..3 {
            let r = hub
                .commit_lines(&repo, &[header_line(&format!("api {round}.{i}")), file_line(&format!("api-{round}-{i}.txt"), b"x")])
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
            api_commits.push(r.json()["commitOid"].as_str().unwrap().to_string());
        }
        let ((ok, out), _ws) = push.await.unwrap();
        let history: Vec<String> = hub
            .get(&format!("/api/models/{repo}/commits/main?limit=1000"), None)
            .await
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        for c in &api_commits {
            assert!(history.contains(c), "API commit {c} lost");
        }
        let files = hub.files(&repo).await;
        if ok {
            assert!(history.contains(&pushed), "a successful push is in the history");
            assert!(files.contains(&format!("git-{round}.txt")));
        } else {
            assert!(out.contains("rejected") || out.contains("fetch first") || out.contains("failed to update"), "{out}");
            assert!(!history.contains(&pushed));
            assert!(!files.contains(&format!("git-{round}.txt")), "nothing half-applied");
        }
    }
}

/// A tree `depth` directories deep ending in a file, built bottom-up in `repo`.
fn deep_tree(repo: &git2::Repository, depth: usize) -> git2::Oid {
    let blob = repo.blob(b"deep").unwrap();
    let mut b = repo.treebuilder(None).unwrap();
    b.insert("f.txt", blob, 0o100644).unwrap();
    let mut tree = b.write().unwrap();
    for _ in 0..depth {
        let mut b = repo.treebuilder(None).unwrap();
        b.insert("d", tree, 0o040000).unwrap();
        tree = b.write().unwrap();
    }
    tree
}

/// A tree with one entry named `name` (written raw: libgit2 itself refuses to build such trees).
fn tree_with_entry(repo: &git2::Repository, name: &str) -> git2::Oid {
    let inner = deep_tree(repo, 0);
    let mut raw = format!("40000 {name}\0").into_bytes();
    raw.extend_from_slice(inner.as_bytes());
    repo.odb().unwrap().write(git2::ObjectType::Tree, &raw).unwrap()
}

fn commit_tree(repo: &git2::Repository, tree: git2::Oid) -> git2::Oid {
    let sig = git2::Signature::now("T", "t@example.org").unwrap();
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "odd tree", &repo.find_tree(tree).unwrap(), &[&parent]).unwrap()
}

async fn trees_deeper_than_paths_or_with_dot_entries_are_refused(hub: TestHub) {
    let base = hub.serve().await;
    let repo = hub.create_repo("shape", false).await;
    let before = hub.head_sha(&repo).await;
    let ws = Workspace::clone(&hub, &base, &repo).await;
    let local = git2::Repository::open(&ws.clone).unwrap();
    for (tree, needle) in [
        (deep_tree(&local, 200), "directories deep"),
        (tree_with_entry(&local, ".."), "no path may contain"),
        (tree_with_entry(&local, ".git"), "no path may contain"),
    ] {
        commit_tree(&local, tree);
        let (ok, out) = ws.push("HEAD:main");
        assert!(!ok, "{out}");
        assert!(out.contains(needle), "{out}");
        assert_eq!(hub.head_sha(&repo).await, before);
        ws.git(&["reset", "-q", "--hard", &before]);
    }
}

/// A repo that already holds a tree thousands of levels deep (pushed through an older git
/// that did not refuse it) is read without exhausting the stack.
async fn a_deep_tree_in_a_repo_is_read_safely(hub: TestHub) {
    let repo = hub.create_repo("deep", false).await;
    let name = hub_server::names::RepoName::new(hub_server::names::RepoType::Model, "alice", "deep").unwrap();
    let id = hub.state.db.find_repo(&name).await.unwrap().unwrap().id;
    let git = hub.state.git.open(&id).unwrap();
    let tree = deep_tree(&git, 8000);
    let sig = git2::Signature::now("T", "t@example.org").unwrap();
    let parent = git.find_commit(git.refname_to_id("refs/heads/main").unwrap()).unwrap();
    git.commit(Some("refs/heads/main"), &sig, &sig, "deep", &git.find_tree(tree).unwrap(), &[&parent]).unwrap();
    assert_eq!(hub.get(&format!("/api/models/{repo}"), None).await.status, StatusCode::OK);
    assert_eq!(hub.get(&format!("/api/models/{repo}/tree/main?recursive=true"), None).await.status, StatusCode::OK);
    assert_eq!(hub.get(&format!("/{repo}"), None).await.status, StatusCode::OK);
}

backend_tests!(
    trees_deeper_than_paths_or_with_dot_entries_are_refused,
    a_deep_tree_in_a_repo_is_read_safely,
    push_is_served_by_the_api_at_once,
    pushes_that_break_the_rules_are_refused,
    credentials_are_required_as_the_repo_says,
    concurrent_push_and_api_commits
);
