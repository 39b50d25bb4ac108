//! The web pages: status and key content of each, the privacy rules, and hostile cards.
#![allow(clippy::unwrap_used)] // test bodies run through backend_tests!, outside #[test] fns

use futures::StreamExt;

use crate::common::*;
use axum::http::StatusCode;

fn html(r: &Reply) -> String {
    String::from_utf8(r.body.to_vec()).unwrap()
}

/// The text a reader sees: tags dropped, common entities decoded.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&#x27;", "'").replace("&#39;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

async fn pages_show_repos_cards_files_and_history(hub: TestHub) {
    let repo = hub.create_repo("demo", false).await;
    let readme = "---\nlicense: apache-2.0\npipeline_tag: fill-mask\nlibrary_name: transformers\n---\n# Demo model\n\n| metric | value |\n|---|---|\n| acc | 0.9 |\n\n![plot](images/plot.png) [config](config.json)\n";
    let st_header = br#"{"w":{"dtype":"F16","shape":[4,8],"data_offsets":[0,64]},"b":{"dtype":"F32","shape":[8],"data_offsets":[64,96]}}"#;
    let mut weights = (st_header.len() as u64).to_le_bytes().to_vec();
    weights.extend_from_slice(st_header);
    weights.extend(vec![0u8; 96]);
    let r = hub
        .commit_lines(
            &repo,
            &[
                header_line("Add card"),
                file_line("README.md", readme.as_bytes()),
                file_line("config.json", b"{\"hidden_size\": 8}"),
                file_line("src/train.py", b"print('hi')\n"),
                file_line("model.safetensors", &weights),
            ],
        )
        .await;
    let commit = r.json()["commitOid"].as_str().unwrap().to_string();

    let home = hub.get("/", None).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(html(&home).contains("alice/demo"));
    let filtered = html(&hub.get("/models?pipeline_tag=fill-mask&library=transformers&license=apache-2.0", None).await);
    assert!(filtered.contains("alice/demo"));
    assert!(!html(&hub.get("/models?pipeline_tag=text-generation", None).await).contains("alice/demo"));
    assert!(html(&hub.get("/models?search=dem", None).await).contains("alice/demo"));
    assert!(html(&hub.get("/models?author=alice", None).await).contains("alice/demo"));
    assert!(!html(&hub.get("/models?author=bob", None).await).contains("alice/demo"));

    let page = html(&hub.get(&format!("/{repo}"), None).await);
    assert!(page.contains("<h1>Demo model</h1>"), "the card is rendered");
    assert!(page.contains("<table>") && page.contains("acc"));
    assert!(page.contains("src=\"/alice/demo/resolve/main/images/plot.png\""), "relative images resolve to the repo");
    assert!(page.contains("href=\"/alice/demo/blob/main/config.json\""));
    assert!(page.contains("license: apache-2.0"));
    let quoted_id = |s: &str| ["&quot;", "&#34;", "\""].iter().any(|q| s.contains(&format!("from_pretrained({q}alice/demo{q})")));
    assert!(quoted_id(&page), "a Use-this-model snippet names the repo");
    assert!(page.contains("git clone http://hub.test/alice/demo"));
    let text = visible_text(&page);
    assert!(text.contains("40 parameters") && text.contains("2 tensors"), "the safetensors summary: {text}");

    let tree = html(&hub.get(&format!("/{repo}/tree/main"), None).await);
    assert!(tree.contains("config.json") && tree.contains("src") && tree.contains("Add card"));
    let sub = html(&hub.get(&format!("/{repo}/tree/main/src"), None).await);
    assert!(sub.contains("train.py"));
    let file = html(&hub.get(&format!("/{repo}/blob/main/src/train.py"), None).await);
    assert!(file.contains("<span style="), "code is highlighted");
    assert!(visible_text(&file).contains("print('hi')"), "{file}");
    let history = html(&hub.get(&format!("/{repo}/commits/main"), None).await);
    assert!(history.contains("Add card") && history.contains("initial commit"));
    let diff = html(&hub.get(&format!("/{repo}/commit/{commit}"), None).await);
    assert!(diff.contains("+print(&#x27;hi&#x27;)") || diff.contains("+print(&#39;hi&#39;)"), "{diff}");
    let at_commit = hub.get(&format!("/{repo}/tree/{}", &commit[..10]), None).await;
    assert_eq!(at_commit.status, StatusCode::OK);

    for missing in [format!("/{repo}/tree/nope"), format!("/{repo}/blob/main/none.txt"), "/alice/none".to_string()] {
        let r = hub.get(&missing, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
        assert!(html(&r).contains("<html"), "errors are pages");
    }
    let css = hub.get("/static/style.css", None).await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
}

async fn private_repos_are_404_pages(hub: TestHub) {
    let repo = hub.create_repo("secret", true).await;
    for url in [format!("/{repo}"), format!("/{repo}/tree/main"), format!("/{repo}/commits/main")] {
        assert_eq!(hub.get(&url, None).await.status, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(hub.get(&url, Some(&hub.bob)).await.status, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(hub.get(&url, Some(&hub.alice)).await.status, StatusCode::OK, "{url}");
    }
    assert!(!html(&hub.get("/models", None).await).contains("alice/secret"));
    assert!(html(&hub.get("/models", Some(&hub.alice)).await).contains("alice/secret"));
}

async fn hostile_cards_render_inert(hub: TestHub) {
    let repo = hub.create_repo("hostile", false).await;
    let card = "# Hi\n\n<script>alert('x')</script>\n\n<img src=x onerror=\"alert(1)\">\n\n[click](javascript:alert(2))\n\n<iframe src=\"https://evil.example\"></iframe>\n";
    hub.commit_lines(&repo, &[header_line("card"), file_line("README.md", card.as_bytes())]).await;
    let page = html(&hub.get(&format!("/{repo}"), None).await);
    let card_html = page.split("<article class=\"card\">").nth(1).unwrap().split("</article>").next().unwrap();
    for bad in ["<script", "onerror", "javascript:", "<iframe"] {
        assert!(!card_html.contains(bad), "{bad} survived in {card_html}");
    }
    assert!(!page.contains("<script"), "no script anywhere on the page");
}

async fn profiles_and_organisation_pages(hub: TestHub) {
    hub.create_repo("open-model", false).await;
    hub.create_repo("closed-model", true).await;
    hub_server::accounts::create_org(&hub.state, "acme", "alice").await.unwrap();
    hub_server::accounts::add_member(&hub.state, "acme", "bob", hub_server::db::Role::Read).await.unwrap();
    let anon = html(&hub.get("/alice", None).await);
    assert!(anon.contains("alice/open-model") && !anon.contains("alice/closed-model"), "private repos only for those who may see them");
    assert!(anon.contains("acme"), "a user's page lists their organisations");
    assert!(html(&hub.get("/alice", Some(&hub.alice)).await).contains("alice/closed-model"));
    let org = html(&hub.get("/acme", None).await);
    assert!(org.contains("organisation") && org.contains("bob") && org.contains("admin"));
    assert_eq!(hub.get("/nobody-here", None).await.status, StatusCode::NOT_FOUND);
}

/// A directory of hundreds of files is shown a page at a time, each entry with its last commit
/// (it used to walk thousands of commits per entry for the whole directory at once).
async fn long_directories_are_paginated(hub: TestHub) {
    let repo = hub.create_repo("many", false).await;
    let mut lines = vec![header_line("many files")];
    lines.extend((0..250).map(|i| file_line(&format!("many/f{i:03}.txt"), format!("{i}").as_bytes())));
    assert_eq!(hub.commit_lines(&repo, &lines).await.status, StatusCode::OK);
    let rows = |page: &str| page.matches("<tr>").count();
    let first = html(&hub.get(&format!("/{repo}/tree/main/many"), None).await);
    assert_eq!(rows(&first), 100);
    assert!(first.contains("?p=1") && first.contains("many files"), "next link and last commit");
    let last = html(&hub.get(&format!("/{repo}/tree/main/many?p=2"), None).await);
    assert_eq!(rows(&last), 50);
    assert!(last.contains("?p=1") && !last.contains("?p=3"));
    assert!(last.contains("f249.txt"));
}

backend_tests!(
    long_directories_are_paginated,
    pages_show_repos_cards_files_and_history,
    private_repos_are_404_pages,
    hostile_cards_render_inert,
    profiles_and_organisation_pages
);

/// A browser: keeps the session cookie and reads CSRF tokens out of forms.
struct Browser<'a> {
    hub: &'a TestHub,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(hub: &'a TestHub) -> Self {
        Browser { hub, cookie: None }
    }

    async fn request(&mut self, method: &str, url: &str, form: Option<&[(&str, &str)]>) -> Reply {
        let mut req = axum::http::Request::builder().method(method).uri(url);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c.clone());
        }
        let body = match form {
            Some(fields) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                form_urlencoded::Serializer::new(String::new()).extend_pairs(fields.iter()).finish()
            }
            None => String::new(),
        };
        let r = self.hub.send(req.body(axum::body::Body::from(body)).unwrap()).await;
        if let Some(set) = r.header("set-cookie") {
            let pair = set.split(';').next().unwrap().to_string();
            self.cookie = if pair.ends_with('=') { None } else { Some(pair) };
        }
        r
    }

    async fn get(&mut self, url: &str) -> Reply {
        self.request("GET", url, None).await
    }

    /// The CSRF token of the form on a page.
    async fn csrf(&mut self, url: &str) -> String {
        let page = html(&self.get(url).await);
        let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
        page[at..].split('"').next().unwrap().to_string()
    }

    async fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> Reply {
        self.request("POST", url, Some(fields)).await
    }
}

async fn sign_up_log_in_tokens_and_new_repos(hub: TestHub) {
    let mut b = Browser::new(&hub);
    let csrf = b.csrf("/join").await;
    // Without the form's CSRF token nothing happens.
    let r = b.post("/join", &[("csrf", "forged"), ("username", "carol"), ("password", "correct horse")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b.post("/join", &[("csrf", &csrf), ("username", "carol"), ("password", "short")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("8 characters"));
    let r = b.post("/join", &[("csrf", &csrf), ("username", "carol"), ("email", "c@example.org"), ("password", "correct horse")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let set_cookie = r.header("set-cookie").unwrap_or_default().to_ascii_lowercase();
    assert!(set_cookie.contains("httponly") && set_cookie.contains("samesite=lax"), "{set_cookie}");
    assert!(html(&b.get("/").await).contains("carol"), "signed in after sign-up");

    // A token made in the browser is shown once and works with the API.
    let csrf = b.csrf("/settings/tokens").await;
    let page = html(&b.post("/settings/tokens", &[("csrf", &csrf), ("name", "laptop"), ("role", "write")]).await);
    let at = page.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
    let token = page[at..].split('<').next().unwrap().to_string();
    assert!(token.starts_with("hf_"));
    assert_eq!(hub.get("/api/whoami-v2", Some(&token)).await.json()["name"], "carol");
    assert!(!html(&b.get("/settings/tokens").await).contains(&token), "shown only once");

    // New repository from the browser.
    let csrf = b.csrf("/new").await;
    let r = b.post("/new", &[("csrf", &csrf), ("owner", "carol"), ("name", "from-web"), ("repo_type", "model"), ("private", "on")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/carol/from-web"));
    assert_eq!(b.get("/carol/from-web").await.status, StatusCode::OK, "the owner sees the private repo");
    assert_eq!(hub.get("/carol/from-web", None).await.status, StatusCode::NOT_FOUND);
    let r = b.post("/new", &[("csrf", &csrf), ("owner", "alice"), ("name", "not-mine"), ("repo_type", "model")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Revoking the token ends it.
    let tokens = html(&b.get("/settings/tokens").await);
    let at = tokens.find("/settings/tokens/").unwrap() + "/settings/tokens/".len();
    let id = tokens[at..].split('/').next().unwrap().to_string();
    let csrf = b.csrf("/settings/tokens").await;
    assert_eq!(b.post(&format!("/settings/tokens/{id}/revoke"), &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(hub.get("/api/whoami-v2", Some(&token)).await.status, StatusCode::UNAUTHORIZED);

    // Log out, then back in; wrong passwords are limited.
    let csrf = b.csrf("/settings/tokens").await;
    assert_eq!(b.post("/logout", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/settings/tokens").await.status, StatusCode::SEE_OTHER, "signed out: back to the login page");
    let csrf = b.csrf("/login").await;
    for _ in 0..5 {
        let r = b.post("/login", &[("csrf", &csrf), ("username", "carol"), ("password", "wrong password")]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = b.post("/login", &[("csrf", &csrf), ("username", "carol"), ("password", "correct horse")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "locked after repeated failures");
    hub.state.login_failures.clear();
    let r = b.post("/login", &[("csrf", &csrf), ("username", "carol"), ("password", "correct horse"), ("next", "//evil.example")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/"), "no open redirects");
    assert!(html(&b.get("/").await).contains("carol"));

    // Account settings: email and password.
    let csrf = b.csrf("/settings/account").await;
    let r = b.post("/settings/account/password", &[("csrf", &csrf), ("current", "nope nope"), ("new", "a brand new password")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = b.post("/settings/account/password", &[("csrf", &csrf), ("current", "correct horse"), ("new", "a brand new password")]).await;
    assert!(html(&r).contains("Password changed"));
    let r = b.post("/settings/account/email", &[("csrf", &csrf), ("email", "carol@new.example")]).await;
    assert!(html(&r).contains("carol@new.example"));
    let csrf = b.csrf("/settings/account").await;
    b.post("/logout", &[("csrf", &csrf)]).await;
    let csrf = b.csrf("/login").await;
    let r = b.post("/login", &[("csrf", &csrf), ("username", "carol"), ("password", "a brand new password")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the new password works");
}

/// Multipart form bodies for the upload page.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----hubtestboundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    for (name, data) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn settings_uploads_and_likes(hub: TestHub) {
    let mut b = Browser::new(&hub);
    let csrf = b.csrf("/join").await;
    b.post("/join", &[("csrf", &csrf), ("username", "dave"), ("password", "long enough pw")]).await;
    let csrf = b.csrf("/new").await;
    b.post("/new", &[("csrf", &csrf), ("owner", "dave"), ("name", "web"), ("repo_type", "model")]).await;

    // Upload from the browser: the same commit path as the API (LFS rules included).
    // Larger than axum's default 2 MB extractor limit, which the upload form must lift.
    let csrf = b.csrf("/dave/web/upload").await;
    let weights = vec![7u8; 3 << 20];
    let (ctype, body) = multipart(
        &[("csrf", &csrf), ("folder", "weights"), ("message", "Add from the browser")],
        &[("README.md", b"# Web card\n"), ("model.safetensors", &weights)],
    );
    let mut req = axum::http::Request::post("/dave/web/upload").header("content-type", ctype);
    req = req.header("cookie", b.cookie.clone().unwrap());
    let r = hub.send(req.body(axum::body::Body::from(body)).unwrap()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    let tree = hub.get("/api/models/dave/web/tree/main/weights", None).await.json();
    let st = tree.as_array().unwrap().iter().find(|e| e["path"] == "weights/model.safetensors").unwrap().clone();
    assert!(st.get("lfs").is_some(), "stored with LFS like any other client's upload");
    assert_eq!(hub.get("/api/models/dave/web/commits/main", None).await.json()[0]["title"], "Add from the browser");
    let (ctype, body) = multipart(&[("csrf", "forged")], &[("x.txt", b"x")]);
    let req = axum::http::Request::post("/dave/web/upload").header("content-type", ctype).header("cookie", b.cookie.clone().unwrap());
    assert_eq!(hub.send(req.body(axum::body::Body::from(body)).unwrap()).await.status, StatusCode::FORBIDDEN);

    // A forged form that puts its files before the token is refused at the first file, before
    // its bytes are read (it used to be buffered whole: up to 1 GiB per request).
    let boundary = "----hubtestboundary";
    let head = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n");
    let endless = futures::stream::iter(std::iter::once(Ok::<_, std::io::Error>(bytes::Bytes::from(head))))
        .chain(futures::stream::repeat_with(|| Ok(bytes::Bytes::from(vec![0u8; 1 << 20]))).take(300));
    let req = axum::http::Request::post("/dave/web/upload")
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .header("cookie", b.cookie.clone().unwrap());
    let r = hub.send(req.body(axum::body::Body::from_stream(endless)).unwrap()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", html(&r));
    // A file over the LFS threshold streams from disk into LFS storage.
    let csrf = b.csrf("/dave/web/upload").await;
    let big: Vec<u8> = (0..11u32 << 20).map(|i| (i % 253) as u8).collect();
    let (ctype, body) = multipart(&[("csrf", &csrf)], &[("big.bin", &big)]);
    let req = axum::http::Request::post("/dave/web/upload").header("content-type", ctype).header("cookie", b.cookie.clone().unwrap());
    assert_eq!(hub.send(req.body(axum::body::Body::from(body)).unwrap()).await.status, StatusCode::SEE_OTHER);
    assert_eq!(&hub.get("/dave/web/resolve/main/big.bin", None).await.body[..], &big[..]);

    // Likes.
    let csrf = b.csrf("/dave/web").await;
    assert_eq!(b.post("/dave/web/like", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(hub.get("/api/models/dave/web", None).await.json()["likes"], 1);
    assert!(html(&b.get("/dave/web").await).contains("Liked"));
    b.post("/dave/web/like", &[("csrf", &csrf)]).await;
    assert_eq!(hub.get("/api/models/dave/web", None).await.json()["likes"], 0);

    // Settings: only for admins of the namespace.
    assert_eq!(hub.get("/dave/web/settings", Some(&hub.bob)).await.status, StatusCode::FORBIDDEN);
    let csrf = b.csrf("/dave/web/settings").await;
    b.post("/dave/web/settings/branch", &[("csrf", &csrf), ("name", "dev"), ("from", "main")]).await;
    b.post("/dave/web/settings/tag", &[("csrf", &csrf), ("name", "v1"), ("from", "main")]).await;
    let refs = hub.get("/api/models/dave/web/refs", None).await.json();
    assert_eq!(refs["branches"].as_array().unwrap().len(), 2);
    assert_eq!(refs["tags"][0]["name"], "v1");
    let r = b.post("/dave/web/settings/branch-delete", &[("csrf", &csrf), ("name", "main")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the default branch stays");
    b.post("/dave/web/settings/visibility", &[("csrf", &csrf), ("visibility", "private")]).await;
    assert_eq!(hub.get("/dave/web", None).await.status, StatusCode::NOT_FOUND);
    let r = b.post("/dave/web/settings/move", &[("csrf", &csrf), ("to", "dave/renamed")]).await;
    assert_eq!(r.header("location"), Some("/dave/renamed/settings?done=moved"));
    let csrf = b.csrf("/dave/renamed/settings").await;
    let r = b.post("/dave/renamed/settings/delete", &[("csrf", &csrf), ("confirm", "dave/wrong")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "typed confirmation must match");
    let r = b.post("/dave/renamed/settings/delete", &[("csrf", &csrf), ("confirm", "dave/renamed")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/dave/renamed").await.status, StatusCode::NOT_FOUND);
}

backend_tests!(sign_up_log_in_tokens_and_new_repos, settings_uploads_and_likes);
