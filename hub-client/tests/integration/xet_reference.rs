//! hub-client's Xet chunking and hashing against the reference: hf_xet 1.8 (`hf_xet.hash_files`,
//! from the conformance venv) must give every file the same Xet file hash, which it only does
//! when every chunk boundary and every chunk hash agree.
#![allow(clippy::unwrap_used)]

#[path = "support/crafted_chunks.rs"]
mod crafted_chunks;

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    let venv = std::env::var("HUB_CONFORMANCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hub-conformance-venv"));
    let py = venv.join("bin/python");
    assert!(py.exists(), "{} missing: run the test command (scripts/test), which creates it", py.display());
    py
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Float weights (compressible, with structure), zero runs and random stretches.
fn mixed(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut part = 0u64;
    while out.len() < n {
        let len = (n - out.len()).min(300_000 + (part as usize * 77_777) % 500_000);
        match part % 3 {
            0 => out.extend(random_bytes(len, seed + part)),
            1 => out.extend((0..len / 4 + 1).flat_map(|i| ((i as f32) * 0.0007 + part as f32).sin().to_le_bytes()).take(len)),
            _ => out.extend(std::iter::repeat_n(0u8, len)),
        }
        part += 1;
    }
    out.truncate(n);
    out
}

fn hf_xet_hashes(paths: &[&Path]) -> Vec<String> {
    let list: Vec<String> = paths.iter().map(|p| format!("{:?}", p.to_str().unwrap())).collect();
    let code = format!("import hf_xet\nfor r in hf_xet.hash_files([{}]): print(r.hash)", list.join(","));
    let out = Command::new(python()).args(["-c", &code]).output().unwrap();
    assert!(out.status.success(), "hf_xet failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn file_hashes_match_hf_xet() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("one-byte", vec![42]),
        ("below-min", random_bytes(8_191, 1)),
        ("min", random_bytes(8_192, 2)),
        ("max", random_bytes(131_072, 3)),
        ("max-plus-one", random_bytes(131_073, 4)),
        ("random-300k", random_bytes(300_000, 5)),
        ("zeros-1m", vec![0u8; 1 << 20]),
        ("mixed-3m", mixed(3 * 1024 * 1024 + 11, 6)),
        // Over 20 MB: hundreds of chunks, several hash-tree levels.
        ("mixed-21m", mixed(21 * 1024 * 1024 + 5, 7)),
        ("random-24m", random_bytes(24 * 1024 * 1024 + 3, 8)),
        // Boundaries on the edge cases of the minimum size.
        ("crafted", crafted_chunks::crafted(6, 200_000, 9).0),
    ];
    let mut paths = Vec::new();
    for (name, data) in &files {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        paths.push(p);
    }
    let reference = hf_xet_hashes(&paths.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert_eq!(reference.len(), files.len());
    for ((name, data), (path, expected)) in files.iter().zip(paths.iter().zip(&reference)) {
        let ours = hub_client::xet::hash_file(path).unwrap();
        assert_eq!(&ours.xet_hash, expected, "{name}: Xet file hash differs from hf_xet's");
        assert_eq!(ours.size, data.len() as u64);
        assert_eq!(ours.sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data)), "{name}");
    }
}
