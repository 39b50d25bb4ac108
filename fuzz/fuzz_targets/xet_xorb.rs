//! Xorb uploads: `POST /xet/v1/xorbs/default/{hash}` with a Xet write token. Input: one selector
//! byte, then either the raw body (sent under a hash it cannot have) or a structured xorb:
//! records `[kind][len u16 LE][data]`, each a chunk serialized as hf_xet does (kind % 3: none,
//! LZ4, byte-grouping + LZ4; kind & 0x40: `len * 4` copies of one byte instead of data),
//! or, for kinds from 0xF0, a corruption of the serialized body (set a byte, cut, append, add an
//! old client's footer, send under another hash).
//! Beyond the shared checks: an honest xorb within hf_xet's limits is accepted, a read-only
//! token is refused, and a body under a hash it cannot have is never stored.
#![no_main]

use axum::http::StatusCode;
use hub_fuzz::xet::{fixture_xorbs, scheme, Xorb};
use hub_fuzz::{check, fail, hub, sha256_hex, write_seeds, Call, Reader};
use libfuzzer_sys::fuzz_target;
use xet_core_structures::xorb_object::serialize_chunk;

/// A structured input: chunks (data, scheme) and the body after corruptions.
struct Built {
    chunks: Vec<Vec<u8>>,
    body: Vec<u8>,
    corrupted: bool,
    footer: bool,
    other_hash: bool,
}

fn build(r: &mut Reader) -> Built {
    let mut b = Built { chunks: Vec::new(), body: Vec::new(), corrupted: false, footer: false, other_hash: false };
    while !r.is_empty() {
        let kind = r.u8();
        match kind {
            0xF0 => {
                let (at, v) = (r.u16() as usize, r.u8());
                if !b.body.is_empty() {
                    let n = b.body.len();
                    b.body[at % n] = v;
                    b.corrupted = true;
                }
            }
            0xF1 => {
                b.body.truncate(r.u16() as usize);
                b.corrupted = true;
            }
            0xF2 => {
                let n = r.u8() as usize;
                b.body.extend_from_slice(r.take(n));
                b.corrupted = true;
            }
            0xF3 => {
                // An older client's footer (ident, version, then its tables): ignored from its
                // ident on; chunks after it are not part of the xorb.
                b.body.extend_from_slice(b"XETBLOB\x01");
                b.body.extend_from_slice(r.take(64));
                b.footer = true;
            }
            0xF4..=0xFF => b.other_hash = true,
            _ => {
                let len = r.u16() as usize;
                let data = if kind & 0x40 != 0 { vec![r.u8(); len * 4] } else { r.take(len).to_vec() };
                if b.corrupted || b.footer {
                    continue; // chunks after a corruption or a footer would not count
                }
                serialize_chunk(&data, &mut b.body, scheme(kind)).expect("serializing into memory");
                b.chunks.push(data);
            }
        }
    }
    b
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (a, _) = fixture_xorbs();
    let mut raw = vec![0u8];
    raw.extend_from_slice(&a.body);
    let record = |kind: u8, data: &[u8]| {
        let mut v = vec![kind];
        v.extend_from_slice(&(data.len() as u16).to_le_bytes());
        v.extend_from_slice(data);
        v
    };
    let d = hub_fuzz::xet::data(11, 2000);
    let mut three = vec![1u8];
    three.extend(record(1, &d[..900]));
    three.extend(record(2, &d[900..1600]));
    three.extend(record(0, &d[1600..]));
    let mut big = vec![1u8];
    big.extend([0x41, 0x00, 0x80, b'z']); // 0x8000 * 4 = 128 KiB of 'z': the largest chunk
    big.extend(record(1, b"tail"));
    let mut footer = three.clone();
    footer.extend([0xF3]);
    footer.extend_from_slice(b"old footer bytes");
    vec![("raw-fixture-a", raw), ("three-chunks", three), ("largest-chunk", big), ("footer", footer)]
}

fuzz_target!(init: { write_seeds(&seeds()); hub(); }, |data: &[u8]| {
    let hub = hub();
    let Some((&sel, rest)) = data.split_first() else { return };
    let token = if sel & 0x40 != 0 { &hub.xet_read } else { &hub.xet_write };
    if sel % 4 == 0 {
        // Raw: under a hash the body cannot have (its SHA-256 read as a Xet hash), or not a hash.
        let hash = if sel & 0x80 != 0 { String::from_utf8_lossy(&rest[..rest.len().min(64)]).into_owned() } else { sha256_hex(rest) };
        let call = Call::post(format!("/xet/v1/xorbs/default/{}", hub_fuzz::encode_segment(hash.as_bytes())), rest).bearer(token);
        let Some(r) = hub.try_send(&call) else { return };
        check(&call, &r);
        // (A hash the hub already has answers `was_inserted: false` without a look at the body.)
        if r.json().is_some_and(|v| v["was_inserted"] == true) {
            fail("a xorb was stored under a hash its chunks cannot have", &call, Some(&r));
        }
        return;
    }
    let b = build(&mut Reader(rest));
    let x = Xorb::new(b.chunks.clone());
    let hash = if b.other_hash { fixture_xorbs().1.hex() } else { x.hex() };
    let call = Call::post(format!("/xet/v1/xorbs/default/{hash}"), b.body.clone()).bearer(token);
    let Some(r) = hub.try_send(&call) else { return };
    check(&call, &r);
    if sel & 0x40 != 0 {
        if r.status != StatusCode::FORBIDDEN {
            fail("a xorb upload with a read-only Xet token was not refused with 403", &call, Some(&r));
        }
        return;
    }
    let honest = !b.corrupted
        && !b.other_hash
        && !b.chunks.is_empty()
        && b.chunks.len() <= 8192
        && b.chunks.iter().all(|c| !c.is_empty() && c.len() <= 128 * 1024);
    if honest && r.status != StatusCode::OK {
        fail("an honest xorb within hf_xet's limits was refused", &call, Some(&r));
    }
});
