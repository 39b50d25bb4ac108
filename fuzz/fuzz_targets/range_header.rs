//! `Range` headers on `GET`/`HEAD /{ns}/{name}/resolve/main/{file}` (inline, empty, LFS and Xet
//! files), on Xet reconstructions (`GET /xet/v1/reconstructions/{hash}`) and on signed xorb
//! ranges. Input: one selector byte, then the header value as sent.
//! Beyond the shared checks, against the fixture's known bytes: a 200 carries the whole file, a
//! 206 exactly the bytes its Content-Range names, a 416 names the size; a reconstruction,
//! followed like hf_xet follows it, yields the same bytes resolve serves for that Range.
#![no_main]

use axum::http::{Method, StatusCode};
use hub_fuzz::{check, fail, hub, Call, Reply, ORIGIN, REPO};
use libfuzzer_sys::fuzz_target;

/// Parses `bytes A-B/SIZE` of a 206.
fn content_range(r: &Reply) -> Option<(u64, u64, u64)> {
    let v = r.header("content-range")?.strip_prefix("bytes ")?;
    let (range, size) = v.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, size.parse().ok()?))
}

/// What a resolve answer must be for content `want` under the Range sent.
fn check_resolve(call: &Call, r: &Reply, want: &[u8]) {
    let head = call.method == Method::HEAD;
    let body_ok = |expect: &[u8]| head && r.body.is_empty() || r.body == expect;
    let len = r.header("content-length").and_then(|v| v.parse::<u64>().ok());
    match r.status {
        StatusCode::OK => {
            if !body_ok(want) || len != Some(want.len() as u64) {
                fail("a 200 that is not the whole file", call, Some(r));
            }
        }
        StatusCode::PARTIAL_CONTENT => {
            let Some((a, b, size)) = content_range(r) else { fail("a 206 without a valid Content-Range", call, Some(r)) };
            if size != want.len() as u64 || a > b || b >= size {
                fail("a 206 whose Content-Range does not fit the file", call, Some(r));
            }
            if !body_ok(&want[a as usize..=b as usize]) || len != Some(b - a + 1) {
                fail("a 206 whose bytes are not the ones its Content-Range names", call, Some(r));
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            if r.header("content-range") != Some(format!("bytes */{}", want.len()).as_str()) {
                fail("a 416 without Content-Range: bytes */size", call, Some(r));
            }
        }
        _ => fail("resolve of an existing file answered neither 200, 206 nor 416", call, Some(r)),
    }
}

fuzz_target!(init: { hub(); }, |data: &[u8]| {
    let hub = hub();
    let Some((&sel, value)) = data.split_first() else { return };
    let Ok(value) = std::str::from_utf8(value) else {
        // Not text: no `to_str` on the hub's side, so such a header is ignored. Still sent.
        let mut call = Call::get(format!("/{REPO}/resolve/main/small.txt"));
        if let Ok(v) = axum::http::HeaderValue::from_bytes(value) {
            call.headers.push((axum::http::header::RANGE, v));
            if let Some(r) = hub.try_send(&call) {
                check(&call, &r);
                check_resolve(&call, &r, &hub.fixture.small);
            }
        }
        return;
    };
    let fx = &hub.fixture;
    match sel % 8 {
        // resolve, GET or HEAD, of each kind of file.
        0..=4 => {
            let (file, want): (&str, &[u8]) = match sel % 8 {
                0 => ("small.txt", &fx.small),
                1 => ("empty.txt", b""),
                2 => ("lfs.bin", &fx.lfs),
                _ => ("xet.bin", &fx.xet),
            };
            let method = if sel & 0x80 != 0 { Method::HEAD } else { Method::GET };
            let call = Call::new(method, format!("/{REPO}/resolve/main/{file}")).header("range", value);
            if call.headers.is_empty() {
                return; // a value no HTTP request could carry
            }
            let Some(r) = hub.try_send(&call) else { return };
            check(&call, &r);
            if file == "empty.txt" {
                // Empty files answer 200 whatever the Range (hf-hub 0.4 probes them with bytes=0-0).
                if r.status != StatusCode::OK || !r.body.is_empty() {
                    fail("an empty file did not answer an empty 200", &call, Some(&r));
                }
                return;
            }
            check_resolve(&call, &r, want);
        }
        // The Xet reconstruction of xet.bin, followed, against resolve under the same Range.
        5 | 6 => {
            let v2 = sel % 8 == 6;
            let call = Call::get(format!("/xet/v{}/reconstructions/{}", if v2 { 2 } else { 1 }, fx.xet_hash))
                .bearer(&hub.xet_read)
                .header("range", value);
            if call.headers.len() < 2 {
                return;
            }
            let Some(r) = hub.try_send(&call) else { return };
            check(&call, &r);
            let resolve = Call::get(format!("/{REPO}/resolve/main/xet.bin")).header("range", value);
            let whole = hub.send(&resolve);
            match r.status {
                StatusCode::OK if !v2 => {
                    let got = hub
                        .follow_reconstruction(&r.json().unwrap_or_default())
                        .unwrap_or_else(|e| fail(&format!("a reconstruction that does not add up: {e}"), &call, Some(&r)));
                    // Resolve serves the Range's bytes (206) or the whole file (200, ignored Range).
                    let want = if whole.status.is_success() { whole.body.to_vec() } else { Vec::new() };
                    if !got.starts_with(&want) || want.is_empty() {
                        fail(&format!("the reconstruction yields {} bytes that are not the {} resolve serves", got.len(), want.len()), &call, Some(&r));
                    }
                }
                StatusCode::OK => {}
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    if whole.status != StatusCode::RANGE_NOT_SATISFIABLE {
                        fail(&format!("the reconstruction refused a Range resolve answers {}", whole.status), &call, Some(&r));
                    }
                }
                _ => fail("a reconstruction of a stored file answered neither 200 nor 416", &call, Some(&r)),
            }
        }
        // A signed xorb range (all of xorb A) under a Range.
        _ => {
            let call = Call::get(fx.xorb_a_range_url.trim_start_matches(ORIGIN)).header("range", value);
            if call.headers.is_empty() {
                return;
            }
            let Some(r) = hub.try_send(&call) else { return };
            check(&call, &r);
            if r.status == StatusCode::PARTIAL_CONTENT {
                let Some((a, b, size)) = content_range(&r) else { fail("a 206 without a valid Content-Range", &call, Some(&r)) };
                let stored = &fx.xorb_a.body;
                if size != stored.len() as u64 || a > b || b >= size || r.body != stored[a as usize..=b as usize] {
                    fail("a xorb range whose bytes are not the stored ones it names", &call, Some(&r));
                }
            } else if r.status != StatusCode::RANGE_NOT_SATISFIABLE {
                fail("a signed xorb range answered neither 206 nor 416", &call, Some(&r));
            }
        }
    }
});
