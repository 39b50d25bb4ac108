//! Docker cannot run here, so the deployment files are checked by reading them: the services
#![allow(clippy::unwrap_used)]
//! exist, their Dockerfiles exist and are multi-stage, ports bind to 127.0.0.1, every named
//! volume is declared, and every `HUB_*` variable set is one the server reads.

use serde_yaml::Value;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn compose() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("docker-compose.yml")).unwrap()).unwrap()
}

#[test]
fn compose_runs_postgres_minio_and_the_hub() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    for name in ["postgres", "minio", "minio-init", "hub", "inference"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        if name != "minio-init" {
            assert!(svc.get("healthcheck").is_some(), "{name} has no healthcheck");
        }
        for port in svc.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
            assert!(port.as_str().unwrap().starts_with("127.0.0.1:"), "{name} publishes {port:?} beyond localhost");
        }
        for vol in svc.get("volumes").and_then(Value::as_sequence).into_iter().flatten() {
            let source = vol.as_str().unwrap().split(':').next().unwrap();
            assert!(c["volumes"].get(source).is_some(), "{name} uses undeclared volume {source}");
        }
    }
    let hub = &c["services"]["hub"];
    assert_eq!(hub["depends_on"]["postgres"]["condition"], "service_healthy");
    assert_eq!(hub["depends_on"]["minio-init"]["condition"], "service_completed_successfully");
}

#[test]
fn the_images_are_built_in_stages_into_a_small_runtime() {
    for service in ["hub", "inference"] {
        image_is_built_in_stages(service);
    }
}

fn image_is_built_in_stages(service: &str) {
    let c = compose();
    let build = &c["services"][service]["build"];
    let context = root().join(build["context"].as_str().unwrap());
    let dockerfile = std::fs::read_to_string(context.join(build["dockerfile"].as_str().unwrap())).unwrap();
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

#[test]
fn the_hub_forwards_inference_to_the_worker_service() {
    let c = compose();
    let hub_env = c["services"]["hub"]["environment"].as_mapping().unwrap();
    let worker = &c["services"]["inference"];
    let worker_env = worker["environment"].as_mapping().unwrap();
    let bind = worker_env["INFERENCE_BIND"].as_str().unwrap();
    let port = bind.rsplit(':').next().unwrap();
    assert_eq!(hub_env["HUB_INFERENCE_URL"].as_str().unwrap(), format!("http://inference:{port}"));
    assert_eq!(worker_env["INFERENCE_HUB_URL"].as_str().unwrap(), "http://hub:8080");
    assert!(worker.get("ports").is_none(), "the worker trusts the hub's access checks: it must not be published");
    // Every variable compose sets is one the worker's command line reads.
    let main = std::fs::read_to_string(root().join("inference-worker/src/main.rs")).unwrap();
    let known: Vec<&str> = main.split("env = \"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    for (k, _) in worker_env {
        let k = k.as_str().unwrap();
        assert!(known.contains(&k) || k == "RUST_LOG", "compose sets {k}, which inference-worker does not read (it reads {known:?})");
    }
}

#[test]
fn compose_sets_only_variables_the_server_reads() {
    let c = compose();
    let env = c["services"]["hub"]["environment"].as_mapping().unwrap();
    let known = hub_server::cli::env_vars();
    for key in ["HUB_BIND", "HUB_DATA_DIR", "HUB_DATABASE_URL", "HUB_STORAGE_URL", "HUB_PUBLIC_URL"] {
        assert!(known.contains(&key.to_string()), "the server no longer reads {key}");
        assert!(env.contains_key(key), "compose does not set {key}");
    }
    for (k, _) in env {
        let k = k.as_str().unwrap();
        if k.starts_with("HUB_") {
            assert!(known.contains(&k.to_string()), "compose sets {k}, which hub-server does not read (it reads {known:?})");
        }
    }
    assert!(env["HUB_DATABASE_URL"].as_str().unwrap().starts_with("postgres://"));
    assert!(env["HUB_STORAGE_URL"].as_str().unwrap().starts_with("s3://"));
    // The S3 endpoint points at the minio service.
    assert!(env["AWS_ENDPOINT"].as_str().unwrap().contains("minio:9000"));
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
