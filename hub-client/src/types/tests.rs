//! Each wire type read from the JSON the Hub sends (samples from huggingface.co's wire, as the
//! protocol notes captured them) writes back exactly that JSON: no key dropped, renamed, added
//! or turned from absent into `null`. hub-server serialises these same types, and its
//! integration tests put its real answers through [`round_trip`] too.

use super::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// Reads `wire` as a `T` and checks that it writes back the same JSON.
fn round_trip<T: Serialize + DeserializeOwned>(wire: Value) -> T {
    check_round_trip(&wire).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn repo_info() {
    let info: RepoInfo = round_trip(json!({
        "_id": "65f0", "id": "alice/tiny", "author": "alice",
        "sha": "5bb53d6fb9a34eab861d6d0059828792b9686c35",
        "lastModified": "2026-11-27T14:43:45.000Z", "createdAt": "2026-11-01T10:00:00.000Z",
        "private": false, "gated": false, "disabled": false,
        "downloads": 0, "likes": 0, "tags": [], "library_name": "transformers", "pipeline_tag": null,
        "cardData": {"license": "mit"},
        "siblings": [{"rfilename": ".gitattributes"}, {"rfilename": "config.json"}, {"rfilename": "model.safetensors"}],
        "spaces": [], "usedStorage": 12345,
        "safetensors": {"parameters": {"F32": 10, "BF16": 4}, "total": 14}
    }));
    // `null` and absent stay apart.
    assert_eq!(info.pipeline_tag, Some(None));
    assert_eq!(info.library_name, Some(Some("transformers".into())));
    assert_eq!(info.safetensors.unwrap().total, 14);
    // `expand=sha` keeps only the ids and what was asked for.
    let expanded: RepoInfo = round_trip(json!({"_id": "65f0", "id": "alice/tiny", "sha": "5bb5"}));
    assert_eq!(expanded.tags, None);
    assert_eq!(expanded.pipeline_tag, None);
}

#[test]
fn siblings_with_blobs() {
    round_trip::<Sibling>(json!({"rfilename": "config.json", "size": 8, "blobId": "daa5"}));
    let big: Sibling = round_trip(json!({
        "rfilename": "model.safetensors", "size": 5000, "blobId": "8ab1",
        "lfs": {"sha256": "5998", "size": 5000, "pointerSize": 129}, "xetHash": "e4f1"
    }));
    assert_eq!(big.lfs.unwrap().pointer_size, Some(129));
}

#[test]
fn tree_entries() {
    let entries: Vec<TreeEntry> = round_trip(json!([
        {"type": "directory", "oid": "4b82", "size": 0, "path": "sub dir"},
        {"type": "file", "oid": "daa5", "size": 8, "path": "config.json",
         "lastCommit": {"id": "5bb5", "title": "Upload", "date": "2026-11-27T14:43:45.000Z"}},
        {"type": "file", "oid": "8ab1", "size": 5000, "path": "sub dir/big.bin",
         "lfs": {"oid": "5998", "size": 5000, "pointerSize": 129}, "xetHash": "e4f1"}
    ]));
    assert!(entries[0].is_dir() && !entries[1].is_dir());
    assert!(serde_json::from_value::<TreeEntry>(json!({"type": "link", "oid": "a", "size": 0, "path": "x"})).is_err());
}

#[test]
fn refs_and_history() {
    let refs: GitRefs = round_trip(json!({
        "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": "5bb5"}],
        "tags": [{"name": "v1", "ref": "refs/tags/v1", "targetCommit": "5bb5"}],
        "converts": [],
        "pullRequests": [{"name": "refs/pr/1", "ref": "refs/pr/1", "targetCommit": "77aa"}]
    }));
    assert_eq!(refs.branches[0].full_ref, "refs/heads/main");
    round_trip::<GitRefs>(json!({"branches": [], "tags": [], "converts": []}));
    round_trip::<Vec<GitCommitInfo>>(json!([
        {"id": "5bb5", "title": "Upload", "message": "Upload\n\nmore", "authors": [{"user": "alice"}],
         "date": "2026-11-27T14:43:45.000Z", "parents": ["77aa"],
         "formatted": {"title": "Upload", "message": "a &lt;b&gt;"}},
        {"id": "77aa", "title": "initial commit", "message": "initial commit", "authors": [{"user": "alice"}],
         "date": "2026-11-01T10:00:00.000Z", "parents": []}
    ]));
}

#[test]
fn whoami() {
    let me: WhoAmI = round_trip(json!({
        "type": "user", "id": "1", "name": "alice", "fullname": "Alice", "email": "a@example.org",
        "emailVerified": true, "isPro": false, "canPay": false, "avatarUrl": "/avatars/x.svg",
        "orgs": [{"type": "org", "name": "acme", "fullname": "Acme", "roleInOrg": "admin"}],
        "auth": {"type": "access_token", "accessToken": {"displayName": "laptop", "role": "write"}}
    }));
    assert_eq!(me.auth.unwrap().access_token.unwrap().role, "write");
    round_trip::<WhoAmI>(json!({"name": "bob", "email": null, "orgs": []}));
}

#[test]
fn repo_management() {
    // huggingface_hub's create (organization null: the caller's namespace) and hf-hub 1.0's.
    let py: RepoRequest = round_trip(json!({"name": "tiny", "organization": null, "type": "dataset", "visibility": "private"}));
    assert_eq!(py.organization, None);
    round_trip::<RepoRequest>(json!({"name": "rs1", "organization": "alice", "private": false, "type": "model"}));
    assert_eq!(
        serde_json::to_value(RepoRequest::for_id(RepoType::Model, "alice/tiny")).unwrap(),
        json!({"name": "tiny", "organization": "alice", "type": "model"})
    );
    round_trip::<RepoUrl>(json!({"url": "https://hub.example/alice/tiny", "name": "alice/tiny", "id": "alice/tiny"}));
    round_trip::<RepoUrl>(json!({"url": "https://hub.example/acme/tiny2"}));
    round_trip::<MoveRequest>(json!({"fromRepo": "alice/tiny", "toRepo": "acme/tiny2", "type": "model"}));
    round_trip::<SettingsRequest>(json!({"gated": false, "visibility": "private"}));
    round_trip::<SettingsRequest>(json!({"private": true}));
    round_trip::<RepoSettings>(json!({"private": true, "gated": false}));
    round_trip::<BranchRequest>(json!({}));
    round_trip::<BranchRequest>(json!({"startingPoint": "v1"}));
    round_trip::<TagRequest>(json!({"tag": "v1", "message": "first"}));
    round_trip::<SquashRequest>(json!({"message": "squash"}));
    round_trip::<CommitOid>(json!({"commitOid": "5bb5"}));
    round_trip::<Empty>(json!({}));
}

#[test]
fn preupload_and_commit() {
    round_trip::<PreuploadRequest>(json!({
        "files": [{"path": "sub dir/big.bin", "sample": "AAEC", "size": 5000}], "gitIgnore": "*.log\n"
    }));
    let answer: PreuploadResponse = round_trip(json!({
        "files": [{"path": "sub dir/big.bin", "uploadMode": "lfs", "shouldIgnore": false, "oid": null},
                  {"path": "config.json", "uploadMode": "regular", "shouldIgnore": true, "oid": "daa5"}],
        "commitOid": "5bb5"
    }));
    assert_eq!(answer.files[0].upload_mode, UploadMode::Lfs);
    round_trip::<CommitResponse>(json!({
        "success": true, "commitOid": "5bb5", "commitUrl": "https://hub.example/alice/tiny/commit/5bb5"
    }));
    let pr: CommitResponse = round_trip(json!({
        "success": true, "commitOid": "5bb5", "commitUrl": "https://hub.example/alice/tiny/commit/5bb5",
        "pullRequestUrl": "https://hub.example/alice/tiny/discussions/3", "prNum": 3
    }));
    assert_eq!(pr.pr_num, Some(3));
}

#[test]
fn ndjson_lines() {
    let lines = [
        json!({"key": "header", "value": {"summary": "Upload big.bin", "description": "", "parentCommit": "5bb5d"}}),
        json!({"key": "file", "value": {"content": "e30=", "path": "config.json", "encoding": "base64"}}),
        json!({"key": "lfsFile", "value": {"path": "sub dir/big.bin", "algo": "sha256", "oid": "5998", "size": 5000}}),
        json!({"key": "lfsFile", "value": {"path": "copy.bin", "algo": "sha256", "oid": "5998"}}),
        json!({"key": "deletedFile", "value": {"path": "old.txt"}}),
        json!({"key": "deletedFolder", "value": {"path": "checkpoints/step1"}}),
    ];
    let typed: Vec<NdjsonLine> = lines.into_iter().map(round_trip).collect();
    assert!(matches!(&typed[3], NdjsonLine::LfsFile(f) if f.size.is_none()));
    // An operation with a key it does not know is refused, not ignored.
    assert!(serde_json::from_value::<NdjsonLine>(json!({"key": "deletedFile", "value": {"path": "a", "x": 1}})).is_err());
}

#[test]
fn lfs_batch() {
    round_trip::<LfsBatchRequest>(json!({
        "operation": "upload", "transfers": ["basic", "multipart"],
        "objects": [{"oid": "5998", "size": 5000}], "hash_algo": "sha256", "ref": {"name": "main"}
    }));
    round_trip::<LfsBatchRequest>(json!({
        "operation": "download", "transfers": ["lfs-standalone-file", "basic", "ssh"],
        "objects": [{"oid": "5998", "size": 5000}], "ref": {"name": "refs/heads/main"}
    }));
    let answer: LfsBatchResponse = round_trip(json!({
        "transfer": "basic", "hash_algo": "sha256",
        "objects": [
            {"oid": "5998", "size": 5000, "authenticated": true,
             "actions": {"upload": {"href": "https://hub.example/lfs/upload/x", "expires_in": 3600},
                         "verify": {"href": "https://hub.example/alice/tiny.git/info/lfs/objects/verify",
                                    "header": {"Authorization": "Bearer t"}}}},
            {"oid": "abcd", "size": 10},
            {"oid": "bad", "size": -1, "error": {"code": 422, "message": "size must not be negative"}}
        ]
    }));
    assert_eq!(answer.objects[1], LfsObject::done("abcd".into(), 10));
    assert_eq!(answer.objects[2], LfsObject::failed("bad".into(), -1, 422, "size must not be negative"));
    let multipart: LfsBatchResponse = round_trip(json!({
        "transfer": "multipart", "hash_algo": "sha256",
        "objects": [{"oid": "5998", "size": 20000000, "authenticated": true,
            "actions": {"upload": {"href": "https://hub.example/complete", "expires_in": 86400,
                "header": {"chunk_size": "10485760", "1": "https://hub.example/p1", "2": "https://hub.example/p2"}}}}]
    }));
    let upload = multipart.objects[0].actions.as_ref().unwrap().upload.as_ref().unwrap();
    assert_eq!(upload.chunk_size(), Some(10_485_760));
    round_trip::<LfsVerifyRequest>(json!({"oid": "5998", "size": 5000}));
    round_trip::<LfsVerified>(json!({"message": "ok"}));
    round_trip::<MultipartCompletion>(
        json!({"oid": "5998", "parts": [{"partNumber": 1, "etag": "\"a1\""}, {"partNumber": 2, "etag": "\"b2\""}]}),
    );
}

#[test]
fn errors_and_misc() {
    round_trip::<ErrorBody>(json!({"error": "Repository not found"}));
    round_trip::<ErrorBody>(json!({"error": "You already created this model repo", "url": "https://hub.example/alice/tiny"}));
    round_trip::<ErrorBody>(json!({"error": "bad yaml", "errors": [{"message": "bad yaml"}], "warnings": []}));
    round_trip::<YamlValidation>(json!({"errors": [], "warnings": []}));
    round_trip::<ValidateYamlRequest>(json!({"content": "---\nlicense: mit\n---\n", "repoType": "model"}));
    round_trip::<AgentHarnesses>(json!({"standardEnvVars": [], "harnesses": {}}));
}

#[test]
fn xet() {
    use crate::xet_types::*;
    round_trip::<XetTokenInfo>(json!({"accessToken": "t", "exp": 7, "casUrl": "http://h/xet"}));
    round_trip::<ReconstructionV1>(json!({
        "offset_into_first_range": 0,
        "terms": [{"hash": "ab", "unpacked_length": 10, "range": {"start": 0, "end": 1}}],
        "fetch_info": {"ab": [{"range": {"start": 0, "end": 1}, "url": "http://h/x", "url_range": {"start": 0, "end": 99}}]}
    }));
    round_trip::<XorbUploadResponse>(json!({"was_inserted": true}));
    round_trip::<ShardUploadResponse>(json!({"result": 1}));
}
