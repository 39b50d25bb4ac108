//! Shard registrations: `POST /xet/v1/shards` with a Xet write token. Input: one selector byte,
//! then either the raw body, or a structured shard over two stored xorbs (A: 3 chunks, B: 2)
//! and one that is not stored (C), every field of which may lie:
//!   n_files (u8 % 4), per file: flags (1 no verification, 2 no SHA-256, 4 wrong file hash,
//!   8 wrong SHA-256; high nibble % 5 terms), per term: [xorb (% 3) | 4 bad verification |
//!   8 unpacked size given as the next u32] [start] [end] (each % 6);
//!   n_xorbs (u8 % 4), per xorb: [xorb (% 3) | 4 one bad chunk hash | 8 chunk count given as the
//!   next u8 % 6]; then byte edits of the serialized shard: [0][at u16][value] or [1][cut at u16].
//! Beyond the shared checks: an honest shard over stored xorbs is accepted; every file of an
//! accepted shard reconstructs (followed as hf_xet follows it) to exactly its chunks' bytes, and
//! once committed as an LFS pointer, resolves to them too.
#![no_main]

use axum::http::StatusCode;
use hub_fuzz::xet::{data, fixture_xorbs, shard, shard_with, FileSpec, TermSpec, Xorb, XorbSpec};
use hub_fuzz::{check, fail, hub, write_seeds, Call, Reader};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use xet_core_structures::merklehash::MerkleHash;

struct Ctx {
    repo: String,
    write: String,
    read: String,
    xorbs: [Xorb; 3],
}

fn ctx() -> &'static Ctx {
    static CTX: OnceLock<Ctx> = OnceLock::new();
    CTX.get_or_init(|| {
        let hub = hub();
        // Its own repo: files registered here and commits of them leave the fixture alone. The
        // fixture's xorbs are already stored; xorb C never is.
        let repo = hub.create_repo("shards", false);
        let (write, read) = (hub.xet_token(&repo, "write"), hub.xet_token(&repo, "read"));
        let (a, b) = fixture_xorbs();
        let d = data(9, 1500);
        let c = Xorb::new(vec![d[..800].to_vec(), d[800..].to_vec()]);
        Ctx { repo, write, read, xorbs: [a, b, c] }
    })
}

struct Built {
    files: Vec<FileSpec>,
    xorbs: Vec<XorbSpec>,
    body: Vec<u8>,
    edited: bool,
}

fn build(r: &mut Reader, xorbs: &[Xorb; 3]) -> Built {
    let mut files = Vec::new();
    for _ in 0..r.u8() % 4 {
        let flags = r.u8();
        let mut terms = Vec::new();
        for _ in 0..(flags >> 4) % 5 {
            let t = r.u8();
            let unpacked = (t & 8 != 0).then(|| r.u32());
            let (start, end) = ((r.u8() % 6) as u32, (r.u8() % 6) as u32);
            terms.push(TermSpec { xorb: xorbs[(t % 3) as usize].clone(), start, end, unpacked, bad_verification: t & 4 != 0 });
        }
        files.push(FileSpec {
            terms,
            file_hash: (flags & 4 != 0).then(|| MerkleHash::random_from_seed(flags as u64)),
            sha256: (flags & 8 != 0).then_some([flags; 32]),
            verification: flags & 1 == 0,
            metadata_ext: flags & 2 == 0,
        });
    }
    let mut specs = Vec::new();
    for _ in 0..r.u8() % 4 {
        let x = r.u8();
        let bad_chunk = (x & 4 != 0).then(|| (r.u8() % 5) as usize);
        let num_chunks = (x & 8 != 0).then(|| (r.u8() % 6) as usize);
        specs.push(XorbSpec { xorb: xorbs[(x % 3) as usize].clone(), num_chunks, bad_chunk });
    }
    let mut body = shard_with(&files, &specs);
    let mut edited = false;
    while !r.is_empty() {
        match r.u8() {
            0 => {
                let (at, v) = (r.u16() as usize, r.u8());
                if !body.is_empty() {
                    let n = body.len();
                    body[at % n] = v;
                }
            }
            1 => body.truncate(r.u16() as usize),
            _ => break,
        }
        edited = true;
    }
    Built { files, xorbs: specs, body, edited }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (a, b) = fixture_xorbs();
    let mut raw = vec![0u8];
    raw.extend(shard(&[FileSpec::whole(&[&a, &b])], &[&a, &b]));
    vec![
        ("raw-fixture", raw),
        // One file of A[0..3) then B[0..2), both xorbs listed.
        ("a-then-b", vec![1, 1, 0x20, 0, 0, 3, 1, 0, 2, 2, 0, 1]),
        // A[1..3) alone, no xorb section.
        ("a-tail", vec![1, 1, 0x10, 0, 1, 3, 0]),
        // Two files, B[0..1) and A[2..3); B listed.
        ("two-files", vec![1, 2, 0x10, 1, 0, 1, 0x10, 0, 2, 3, 1, 1]),
        // A file with no terms (the empty file).
        ("empty-file", vec![1, 1, 0x00, 0]),
    ]
}

fuzz_target!(init: { write_seeds(&seeds()); ctx(); }, |input: &[u8]| {
    let hub = hub();
    let ctx = ctx();
    let Some((&sel, rest)) = input.split_first() else { return };
    if sel % 4 == 0 {
        let call = Call::post("/xet/v1/shards", rest).bearer(&ctx.write);
        if let Some(r) = hub.try_send(&call) {
            check(&call, &r);
        }
        return;
    }
    let b = build(&mut Reader(rest), &ctx.xorbs);
    let call = Call::post("/xet/v1/shards", b.body.clone()).bearer(&ctx.write);
    let Some(r) = hub.try_send(&call) else { return };
    check(&call, &r);
    let stored = |x: &Xorb| x.hash != ctx.xorbs[2].hash;
    let honest = !b.edited
        && b.files.iter().all(|f| f.truthful() && f.terms.iter().all(|t| stored(&t.xorb)))
        && b.xorbs.iter().all(|x| x.num_chunks.is_none() && x.bad_chunk.is_none() && stored(&x.xorb));
    if honest && r.status != StatusCode::OK {
        fail("an honest shard over stored xorbs was refused", &call, Some(&r));
    }
    if r.status != StatusCode::OK || b.edited {
        return;
    }
    // A shard that describes one file twice counts its first description (xet-core's reader
    // drops the rest unseen).
    let mut seen = std::collections::HashSet::new();
    for (i, f) in b.files.iter().enumerate() {
        if !seen.insert(f.stated_hash()) {
            continue;
        }
        if f.terms.iter().any(|t| !t.in_bounds() || !stored(&t.xorb) || t.bad_verification || t.unpacked.is_some()) || f.file_hash.is_some() {
            fail(&format!("a shard was accepted though file {i} lies about its terms"), &call, Some(&r));
        }
        let want = f.bytes();
        let rc = Call::get(format!("/xet/v1/reconstructions/{}", f.hash().hex())).bearer(&ctx.read);
        let rr = hub.send(&rc);
        check(&rc, &rr);
        if rr.status != StatusCode::OK {
            fail(&format!("file {i} of an accepted shard does not reconstruct"), &rc, Some(&rr));
        }
        match hub.follow_reconstruction(&rr.json().unwrap_or_default()) {
            Ok(got) if got == want => {}
            Ok(got) => fail(&format!("file {i} reconstructs to {} bytes, not its {} bytes", got.len(), want.len()), &rc, Some(&rr)),
            Err(e) => fail(&format!("file {i}'s reconstruction does not add up: {e}"), &rc, Some(&rr)),
        }
        // Committed under its (true) SHA-256, it resolves to the same bytes; every 8th input,
        // commits cost more than the rest.
        if f.sha256.is_some() || sel & 0x70 != 0 {
            continue;
        }
        let sha = hub_fuzz::sha256_hex(&want);
        let line = serde_json::json!({"key": "lfsFile", "value": {"path": format!("f/{sha}.bin"), "oid": sha, "size": want.len()}});
        let cr = hub.commit(&ctx.repo, &[hub_fuzz::header_line("shard file"), line]);
        if cr.status.is_server_error() {
            fail("committing a file of an accepted shard failed", &call, Some(&cr));
        }
        if cr.status.is_success() {
            let get = Call::get(format!("/{}/resolve/main/f/{sha}.bin", ctx.repo));
            let gr = hub.send(&get);
            check(&get, &gr);
            if gr.status != StatusCode::OK || gr.body != want {
                fail(&format!("file {i} of an accepted shard, committed, does not resolve to its bytes"), &get, Some(&gr));
            }
        }
    }
});
