//! Docker cannot run here, so the deployment is checked piece by piece: every image
//! docker-compose.yml and its Dockerfiles name is listed in deploy/images.txt as maintained
//! (and checked within a year); the Garage service is the version and configuration the tests
//! run, and — started here from compose's own command, configuration and environment on the
//! Garage binary the test command installs — it serves the hub's bucket to the hub's
//! credentials, also after a restart; every `HUB_*` variable compose sets is one the server
//! reads; ports bind to 127.0.0.1; named volumes and configs are declared.
#![allow(clippy::unwrap_used)]

use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn compose() -> Value {
    serde_norway::from_str(&std::fs::read_to_string(root().join("docker-compose.yml")).unwrap()).unwrap()
}

fn services_sh() -> String {
    std::fs::read_to_string(root().join("scripts/lib/services.sh")).unwrap()
}

fn str_seq(v: &Value) -> Vec<String> {
    v.as_sequence().unwrap_or_else(|| panic!("expected a list, got {v:?}")).iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn env_of(service: &str) -> BTreeMap<String, String> {
    let c = compose();
    let env = c["services"][service]["environment"].as_mapping().unwrap_or_else(|| panic!("{service} has no environment mapping"));
    env.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("{service}: {k:?} is {other:?}"),
            };
            (k.as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn compose_runs_postgres_garage_the_hub_and_the_worker() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    for name in ["postgres", "garage", "hub", "inference"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        assert!(svc.get("healthcheck").is_some(), "{name} has no healthcheck");
        for port in svc.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
            assert!(port.as_str().unwrap().starts_with("127.0.0.1:"), "{name} publishes {port:?} beyond localhost");
        }
        for vol in svc.get("volumes").and_then(Value::as_sequence).into_iter().flatten() {
            let source = vol.as_str().unwrap().split(':').next().unwrap();
            assert!(c["volumes"].get(source).is_some(), "{name} uses undeclared volume {source}");
        }
        for config in svc.get("configs").and_then(Value::as_sequence).into_iter().flatten() {
            let source = config.get("source").and_then(Value::as_str).or(config.as_str()).unwrap();
            assert!(c["configs"].get(source).is_some(), "{name} uses undeclared config {source}");
        }
    }
    let hub = &c["services"]["hub"];
    assert_eq!(hub["depends_on"]["postgres"]["condition"], "service_healthy");
    assert_eq!(hub["depends_on"]["garage"]["condition"], "service_healthy");
    assert!(c["services"]["garage"].get("ports").is_none(), "the hub is the only way into storage: garage must not be published");
}

// ---- (a) every image is known to exist and be maintained ----------------------------------

/// The images a Dockerfile pulls: `FROM` lines and `COPY --from=` that name no earlier stage.
fn dockerfile_images(text: &str) -> Vec<String> {
    let mut stages = BTreeSet::new();
    let mut images = Vec::new();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()) {
            Some(w) if w == "FROM" => {
                let args: Vec<&str> = words[1..].iter().copied().filter(|w| !w.starts_with("--")).collect();
                let image = args[0].to_string();
                if !stages.contains(&image) {
                    images.push(image);
                }
                if args.len() >= 3 && args[1].eq_ignore_ascii_case("as") {
                    stages.insert(args[2].to_string());
                }
            }
            Some(w) if w == "COPY" => {
                if let Some(from) = words.iter().find_map(|w| w.strip_prefix("--from=")) {
                    if !stages.contains(from) && from.parse::<u32>().is_err() {
                        images.push(from.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    images
}

/// Every image `docker compose up --build` pulls, with where it is named.
fn deployment_images() -> Vec<(String, String)> {
    let c = compose();
    let mut out = Vec::new();
    for (name, svc) in c["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        if let Some(image) = svc.get("image").and_then(Value::as_str) {
            out.push((image.to_string(), format!("docker-compose.yml service {name}")));
        }
        if let Some(build) = svc.get("build") {
            let context = root().join(build["context"].as_str().unwrap());
            let text = match (build.get("dockerfile_inline"), build.get("dockerfile")) {
                (Some(inline), _) => inline.as_str().unwrap().to_string(),
                (None, file) => std::fs::read_to_string(context.join(file.and_then(Value::as_str).unwrap_or("Dockerfile"))).unwrap(),
            };
            for image in dockerfile_images(&text) {
                out.push((image, format!("the Dockerfile of service {name}")));
            }
        }
    }
    out
}

struct ListedImage {
    status: String,
    checked: time::Date,
    source: String,
}

fn image_list() -> BTreeMap<String, ListedImage> {
    let text = std::fs::read_to_string(root().join("deploy/images.txt")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(words.len() >= 4, "deploy/images.txt: `{line}` needs an image, a status, a date and where it was checked");
        let checked = time::Date::parse(words[2], time::macros::format_description!("[year]-[month]-[day]"))
            .unwrap_or_else(|e| panic!("deploy/images.txt: `{line}`: the date must be YYYY-MM-DD: {e}"));
        assert!(["maintained", "unmaintained", "removed"].contains(&words[1]), "deploy/images.txt: unknown status in `{line}`");
        let previous = out.insert(words[0].to_string(), ListedImage { status: words[1].into(), checked, source: words[3..].join(" ") });
        assert!(previous.is_none(), "deploy/images.txt lists {} twice", words[0]);
    }
    out
}

/// How long a `maintained` entry stands before someone must look again.
const RECHECK_AFTER_DAYS: i64 = 366;

#[test]
fn every_image_is_listed_as_existing_and_maintained() {
    let listed = image_list();
    let today = time::OffsetDateTime::now_utc().date();
    let images = deployment_images();
    assert!(images.len() >= 4, "expected postgres, garage and the build images: {images:?}");
    // Nothing the list knows to be gone may come back, by any tag of the same repository.
    for (image, named_in) in &images {
        let repo = image.split(':').next().unwrap();
        for (gone, entry) in listed.iter().filter(|(_, e)| e.status != "maintained") {
            assert_ne!(repo, gone.split(':').next().unwrap(), "{named_in} names {image}: {gone} is {} ({})", entry.status, entry.source);
        }
    }
    for (image, named_in) in &images {
        assert!(!image.contains("${") && !image.contains('$'), "{named_in}: {image} is not a fixed image name");
        let tag = image.rsplit_once(':').map(|(_, t)| t).filter(|t| !t.contains('/'));
        assert!(tag.is_some_and(|t| t != "latest"), "{named_in}: {image} must name a version tag (`latest` moves and may vanish)");
        let entry = listed.get(image.as_str()).unwrap_or_else(|| {
            panic!("{named_in} names {image}, which deploy/images.txt does not list: check that it exists and is maintained, then add it with the date and where")
        });
        assert_eq!(entry.status, "maintained", "{named_in} names {image}, listed as {} ({})", entry.status, entry.source);
        let age = (today - entry.checked).whole_days();
        assert!(age >= 0, "deploy/images.txt: {image} was checked in the future ({})", entry.checked);
        assert!(
            age <= RECHECK_AFTER_DAYS,
            "deploy/images.txt: {image} was last checked {age} days ago ({}): check it still exists and is maintained, then update the date",
            entry.checked
        );
    }
}

#[test]
fn the_images_are_built_in_stages_into_a_small_runtime() {
    for service in ["hub", "inference"] {
        image_is_built_in_stages(service);
    }
}

fn dockerfile_of(service: &str) -> (PathBuf, String) {
    let c = compose();
    let build = &c["services"][service]["build"];
    let context = root().join(build["context"].as_str().unwrap());
    let text = std::fs::read_to_string(context.join(build["dockerfile"].as_str().unwrap())).unwrap();
    (context, text)
}

fn image_is_built_in_stages(service: &str) {
    let (context, dockerfile) = dockerfile_of(service);
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage build expected: {stages:?}");
    assert!(stages.last().unwrap().contains("slim"), "the runtime stage should be a slim image: {stages:?}");
    assert!(dockerfile.contains("COPY --from=build"));
    // The build needs every workspace member.
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members: toml_members::Members = toml_members::parse(&manifest);
    for member in members.0 {
        assert!(dockerfile.contains(&format!("COPY {member} {member}")), "the Dockerfile does not copy workspace member {member}");
    }
    // Everything the build copies exists.
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(context.join(src).exists(), "Dockerfile copies missing {src}");
        }
    }
}

/// git in each Debian release's `git` package. git bounds tree recursion (core.maxTreeDepth)
/// from 2.43 on; the hub also refuses deep trees in its pre-receive hook.
const DEBIAN_GIT: &[(&str, (u32, u32))] = &[("bookworm", (2, 39)), ("trixie", (2, 47)), ("forky", (2, 51))];

#[test]
fn the_hub_image_carries_a_git_that_bounds_tree_depth() {
    let (_, dockerfile) = dockerfile_of("hub");
    let runtime = dockerfile.lines().rfind(|l| l.starts_with("FROM ")).unwrap();
    let image = runtime.split_whitespace().nth(1).unwrap();
    let suite = image
        .strip_prefix("debian:")
        .and_then(|t| t.strip_suffix("-slim"))
        .unwrap_or_else(|| panic!("the hub runs on {image}: expected debian:<release>-slim (or teach this test its git version)"));
    let git = DEBIAN_GIT.iter().find(|(s, _)| *s == suite).map(|(_, v)| *v).unwrap_or_else(|| panic!("unknown Debian release {suite}"));
    assert!(git >= (2, 43), "the hub's image {image} ships git {}.{}, which has no core.maxTreeDepth (2.43)", git.0, git.1);
    let installs = dockerfile.lines().skip_while(|l| !l.starts_with(runtime)).collect::<Vec<_>>().join("\n");
    assert!(installs.contains(" git"), "the hub's runtime stage must install git (the hub runs git http-backend and hooks)");
}

#[test]
fn the_hub_forwards_inference_to_the_worker_service() {
    let c = compose();
    let hub_env = env_of("hub");
    let worker = &c["services"]["inference"];
    let worker_env = env_of("inference");
    let bind = &worker_env["INFERENCE_BIND"];
    let port = bind.rsplit(':').next().unwrap();
    assert_eq!(hub_env["HUB_INFERENCE_URL"], format!("http://inference:{port}"));
    assert_eq!(worker_env["INFERENCE_HUB_URL"], "http://hub:8080");
    assert!(worker.get("ports").is_none(), "the worker trusts the hub's access checks: it must not be published");
    // Every variable compose sets is one the worker's command line reads (inference-worker is
    // not a dependency of this crate, so its clap attributes are read from source).
    let main = std::fs::read_to_string(root().join("inference-worker/src/main.rs")).unwrap();
    let known: Vec<&str> = main.split("env = \"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    for k in worker_env.keys() {
        assert!(
            known.contains(&k.as_str()) || k == "RUST_LOG",
            "compose sets {k}, which inference-worker does not read (it reads {known:?})"
        );
    }
}

#[test]
fn compose_sets_only_variables_the_server_reads() {
    let env = env_of("hub");
    let known = hub_server::cli::env_vars();
    for key in ["HUB_BIND", "HUB_DATA_DIR", "HUB_DATABASE_URL", "HUB_STORAGE_URL", "HUB_PUBLIC_URL"] {
        assert!(known.contains(&key.to_string()), "the server no longer reads {key}");
        assert!(env.contains_key(key), "compose does not set {key}");
    }
    for k in env.keys().filter(|k| k.starts_with("HUB_")) {
        assert!(known.contains(k), "compose sets {k}, which hub-server does not read (it reads {known:?})");
    }
    assert!(env["HUB_DATABASE_URL"].starts_with("postgres://"));
    let pg = env_of("postgres");
    assert_eq!(
        env["HUB_DATABASE_URL"],
        format!("postgres://{}:{}@postgres:5432/{}", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]),
        "the hub's database URL must name the postgres service's user, password and database"
    );
}

// ---- (b) Garage: the version and setup the tests run ---------------------------------------

/// `key = value` lines of a TOML file, by `section.key` (enough TOML for garage.toml).
fn toml_entries(text: &str) -> BTreeMap<String, String> {
    let mut section = String::new();
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(format!("{section}{}", k.trim()), v.trim().trim_matches('"').to_string());
        }
    }
    out
}

fn compose_garage_toml() -> String {
    let c = compose();
    let garage = &c["services"]["garage"];
    let config = garage["configs"].as_sequence().unwrap().iter().find(|c| c["target"] == "/etc/garage.toml").expect("garage.toml config");
    c["configs"][config["source"].as_str().unwrap()]["content"].as_str().unwrap().to_string()
}

/// The body of `start_garage` in scripts/lib/services.sh.
fn recipe() -> String {
    let sh = services_sh();
    let start = sh.find("start_garage() {").expect("services.sh defines start_garage");
    let body = &sh[start..];
    body[..body.find("\n}\n").unwrap()].to_string()
}

/// The garage subcommands the recipe runs, as words (`layout assign -z dc1 -c 1G`), up to the
/// first quoted argument or redirection.
fn recipe_commands() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in recipe().lines() {
        for (i, _) in line.match_indices("\"${g[@]}\"") {
            let words: Vec<String> = line[i + "\"${g[@]}\"".len()..]
                .split_whitespace()
                .take_while(|w| !(w.starts_with('"') || w.starts_with('>') || w.starts_with('|') || w.starts_with("2>") || *w == "&&"))
                .map(|w| w.trim_end_matches(')').to_string())
                .collect();
            out.push(words);
        }
    }
    out
}

/// The version the test command installs: `cargo install garage --version X`.
fn tested_garage_version() -> String {
    let sh = services_sh();
    let at = sh.find("cargo install garage --version ").expect("services.sh installs a pinned garage");
    sh[at + "cargo install garage --version ".len()..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn garage_is_the_version_and_configuration_the_tests_run() {
    let c = compose();
    let garage = &c["services"]["garage"];
    let image = garage["image"].as_str().unwrap();
    assert_eq!(
        image,
        format!("dxflrs/garage:v{}", tested_garage_version()),
        "compose must run the Garage the tests install (scripts/lib/services.sh)"
    );

    // The same configuration keys as the tests' garage.toml; the secrets come from the
    // environment here (GARAGE_RPC_SECRET, GARAGE_ADMIN_TOKEN) rather than the file.
    let recipe = recipe();
    let heredoc = &recipe[recipe.find("<<TOML").unwrap() + "<<TOML".len()..recipe.find("\nTOML").unwrap()];
    let tested = toml_entries(heredoc);
    let shipped = toml_entries(&compose_garage_toml());
    let env = env_of("garage");
    for (key, value) in &tested {
        match key.as_str() {
            "rpc_secret" => {
                let secret = env.get("GARAGE_RPC_SECRET").expect("compose sets GARAGE_RPC_SECRET");
                assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()), "GARAGE_RPC_SECRET must be 64 hex digits");
                assert!(!shipped.contains_key(key), "keep the RPC secret out of the config file");
            }
            "admin.admin_token" => assert!(env.contains_key("GARAGE_ADMIN_TOKEN"), "compose sets no GARAGE_ADMIN_TOKEN"),
            // Paths and addresses differ between a test directory and a container.
            k if k.ends_with("_dir") || k.ends_with("_addr") => assert!(shipped.contains_key(k), "compose's garage.toml lacks {k}"),
            k => assert_eq!(shipped.get(k), Some(value), "compose's garage.toml sets {k} unlike the tests' ({value})"),
        }
    }
    for key in shipped.keys() {
        assert!(tested.contains_key(key), "compose's garage.toml sets {key}, which the tests' Garage does not: test what ships");
    }

    // Each step of the tests' setup has its counterpart in how compose starts Garage.
    let command = str_seq(&garage["command"]);
    let healthcheck = str_seq(&garage["healthcheck"]["test"]);
    for step in recipe_commands() {
        let step_text = step.join(" ");
        let words: Vec<&str> = step.iter().map(String::as_str).collect();
        match words.as_slice() {
            // Plain `server`: the tests set Garage up with the commands below. Once they start it
            // with the setup flags too, compose must start it identically.
            ["server"] => assert_eq!(command[..2], ["/garage", "server"]),
            ["server", ..] => assert_eq!(&command[1..], &step[..], "compose starts Garage unlike the tests ({step_text})"),
            ["status"] => assert_eq!(&healthcheck[1..], ["/garage", "status"], "compose must wait for `garage status` as the tests do"),
            ["node", "id", ..] => {}
            ["layout", "assign", rest @ ..] => {
                // --single-node assigns zone dc1 (fixed in Garage) with the disk's capacity.
                let zone = rest.windows(2).find(|w| w[0] == "-z").map(|w| w[1]).expect("the tests assign a zone");
                assert_eq!(zone, "dc1", "Garage's --single-node assigns zone dc1; the tests assign {zone}");
                assert!(command.iter().any(|w| w == "--single-node"), "compose must assign the layout (--single-node) as the tests do");
            }
            ["layout", "apply", "--version", "1"] => {
                assert!(command.iter().any(|w| w == "--single-node"), "compose must apply layout version 1 (--single-node)");
            }
            ["bucket", "create", bucket] => {
                assert!(command.iter().any(|w| w == "--default-bucket"), "compose must create the bucket (--default-bucket)");
                assert_eq!(env.get("GARAGE_DEFAULT_BUCKET").map(String::as_str), Some(*bucket), "compose's bucket differs from the tests'");
            }
            ["key", "create" | "import", ..] => {
                assert!(env.contains_key("GARAGE_DEFAULT_ACCESS_KEY") && env.contains_key("GARAGE_DEFAULT_SECRET_KEY"));
            }
            ["bucket", "allow", flags @ ..] => {
                // --default-bucket grants exactly these; the running check below reads them back.
                for f in ["--read", "--write", "--owner"] {
                    assert!(flags.contains(&f), "the tests grant {flags:?}; compose's setup grants read, write and owner");
                }
            }
            _ => panic!("the tests' Garage setup runs `garage {step_text}`, which compose's setup does not do: add it to both"),
        }
    }

    // The hub talks to that Garage, with that key, bucket and region.
    let hub = env_of("hub");
    let s3_port = shipped["s3_api.api_bind_addr"].rsplit(':').next().unwrap();
    assert_eq!(hub["AWS_ENDPOINT"], format!("http://garage:{s3_port}"));
    assert_eq!(hub["AWS_REGION"], shipped["s3_api.s3_region"]);
    assert_eq!(hub["AWS_ACCESS_KEY_ID"], env["GARAGE_DEFAULT_ACCESS_KEY"]);
    assert_eq!(hub["AWS_SECRET_ACCESS_KEY"], env["GARAGE_DEFAULT_SECRET_KEY"]);
    assert_eq!(hub["HUB_STORAGE_URL"], format!("s3://{}", env["GARAGE_DEFAULT_BUCKET"]));
    assert_eq!(hub["AWS_ALLOW_HTTP"], "true");
}

/// The Garage binary the test command installs, if present.
fn garage_binary() -> Option<PathBuf> {
    let bin = std::env::var_os("HUB_GARAGE_BIN")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hub-tools/bin/garage")))?;
    bin.exists().then_some(bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Garage process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct ComposeGarage {
    bin: PathBuf,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    healthcheck: Vec<String>,
    log: PathBuf,
}

impl ComposeGarage {
    fn command(&self, argv: &[String]) -> Command {
        let mut cmd = Command::new(&self.bin);
        // The image's binary is /garage; everything after it is compose's, unchanged.
        assert_eq!(argv[0], "/garage");
        cmd.args(&argv[1..]).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd.envs(&self.env);
        cmd
    }

    fn start(&self) -> Running {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = self.command(&self.argv).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let running = Running(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.command(&self.healthcheck).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success();
            if ok {
                return running;
            }
            assert!(
                Instant::now() < deadline,
                "compose's Garage never passed its healthcheck:\n{}",
                std::fs::read_to_string(&self.log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut argv = vec!["/garage".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let out = self.command(&argv).output().unwrap();
        assert!(out.status.success(), "garage {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_as_compose_runs_it_serves_the_hubs_bucket() {
    use object_store::{aws::AmazonS3Builder, path::Path as Key, ObjectStore, PutPayload, WriteMultipart};
    let Some(bin) = garage_binary() else {
        // The test command installs Garage before it runs cargo test; a bare `cargo test` may not have it.
        assert!(
            std::env::var_os("HUB_TEST_S3_BUCKET").is_none(),
            "the test command started Garage, but its binary is not at ~/.cache/hub-tools/bin/garage (set HUB_GARAGE_BIN)"
        );
        eprintln!("skipped: no Garage binary (~/.cache/hub-tools/bin/garage or HUB_GARAGE_BIN)");
        return;
    };
    let c = compose();
    let garage = &c["services"]["garage"];
    let dir = tempfile::tempdir().unwrap();

    // Compose's garage.toml with this machine's directories and free ports (each container
    // port mapped to one local port, so rpc_bind_addr and rpc_public_addr still agree).
    let mut ports: BTreeMap<String, u16> = BTreeMap::new();
    let mut config = String::new();
    for line in compose_garage_toml().lines() {
        let rewritten = match line.split_once('=').map(|(k, v)| (k.trim(), v.trim().trim_matches('"'))) {
            Some((k, v)) if k.ends_with("_dir") => format!("{k} = \"{}\"", dir.path().join(v.trim_start_matches('/')).display()),
            Some((k, v)) if k.ends_with("_addr") => {
                let port = v.rsplit(':').next().unwrap().to_string();
                let local = *ports.entry(port).or_insert_with(free_port);
                format!("{k} = \"127.0.0.1:{local}\"")
            }
            _ => line.to_string(),
        };
        config.push_str(&rewritten);
        config.push('\n');
    }
    let config_path = dir.path().join("garage.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut env = env_of("garage");
    env.insert("GARAGE_CONFIG_FILE".into(), config_path.display().to_string());
    let g = ComposeGarage {
        bin,
        argv: str_seq(&garage["command"]),
        env,
        healthcheck: str_seq(&garage["healthcheck"]["test"])[1..].to_vec(),
        log: dir.path().join("garage.log"),
    };

    let started = Instant::now();
    let running = g.start();
    eprintln!("compose's Garage answered its healthcheck after {:?}", started.elapsed());

    // What the tests' recipe sets up, read back: a layout in dc1 at version 1, the bucket, and
    // the key with read, write and owner rights on it.
    let layout = g.cli(&["layout", "show"]);
    assert!(layout.contains("Current cluster layout version: 1"), "{layout}");
    assert!(layout.lines().any(|l| l.split_whitespace().any(|w| w == "dc1")), "no node in zone dc1:\n{layout}");
    let hub = env_of("hub");
    let bucket = hub["HUB_STORAGE_URL"].strip_prefix("s3://").unwrap().split('/').next().unwrap().to_string();
    let info = g.cli(&["bucket", "info", &bucket]);
    assert!(
        info.lines().any(|l| l.trim_start().starts_with("RWO") && l.contains(&hub["AWS_ACCESS_KEY_ID"])),
        "the hub's key lacks read/write/owner on {bucket}:\n{info}"
    );

    // The hub's own settings (endpoint port mapped to this machine) can write and read the bucket.
    let endpoint_port = hub["AWS_ENDPOINT"].rsplit(':').next().unwrap().to_string();
    let store = AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{}", ports[&endpoint_port]))
        .with_region(&hub["AWS_REGION"])
        .with_bucket_name(&bucket)
        .with_access_key_id(&hub["AWS_ACCESS_KEY_ID"])
        .with_secret_access_key(&hub["AWS_SECRET_ACCESS_KEY"])
        .with_allow_http(hub["AWS_ALLOW_HTTP"] == "true")
        .build()
        .unwrap();
    let small = Key::from("compose-check/small");
    store.put(&small, PutPayload::from_static(b"hello from compose")).await.unwrap();
    assert_eq!(&store.get(&small).await.unwrap().bytes().await.unwrap()[..], b"hello from compose");
    // A multipart upload, as the hub streams large files (two 5 MiB parts and a tail).
    let big = Key::from("compose-check/big");
    let data: Vec<u8> = (0..(11 << 20)).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut upload = WriteMultipart::new_with_chunk_size(store.put_multipart(&big).await.unwrap(), 5 << 20);
    upload.write(&data);
    upload.finish().await.unwrap();
    assert_eq!(store.get(&big).await.unwrap().bytes().await.unwrap().as_ref(), &data[..]);

    // Started again by the same command (as `docker compose up` or a restart does), it finds its
    // layout, bucket and key in place and keeps the objects.
    drop(running);
    let _running = g.start();
    assert_eq!(&store.get(&small).await.unwrap().bytes().await.unwrap()[..], b"hello from compose");
    store.put(&Key::from("compose-check/after-restart"), PutPayload::from_static(b"again")).await.unwrap();
    eprintln!("compose's Garage: setup, put/get, multipart and restart checked in {:?}", started.elapsed());
}

/// The `members = [...]` list of the workspace manifest (enough TOML for this check).
mod toml_members {
    pub struct Members(pub Vec<String>);

    pub fn parse(manifest: &str) -> Members {
        let line = manifest.lines().find(|l| l.trim_start().starts_with("members")).expect("workspace members");
        let list = line.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(l, _)| l).unwrap_or("");
        Members(list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()).collect())
    }
}
