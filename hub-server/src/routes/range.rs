//! `Range` requests (RFC 9110 single ranges) over content of a known size, as the clients send
//! them: hf-hub 0.4's `bytes=0-0` probes and past-the-end ends, hf_xet's block queries.

use crate::error::ApiError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

/// A `Range` header resolved against a size: Ok(None) = whole content.
pub fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: answer with the whole content, as RFC 9110 allows
    }
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        // hf-hub 0.4 asks for one byte past the end: clamp instead of 416.
        let end = if b.is_empty() { size.saturating_sub(1) } else { b.parse::<u64>().map_err(|_| ())?.min(size.saturating_sub(1)) };
        if b.parse::<u64>().is_ok_and(|b| b < start) {
            return Ok(None);
        }
        (start, end)
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// What to answer for content of some size under a Range header.
pub struct RangeAnswer {
    pub status: StatusCode,
    /// Inclusive byte range to send; None = everything.
    pub range: Option<(u64, u64)>,
    pub headers: HeaderMap,
}

/// Status and headers for content of `size` bytes under a Range header; the byte range to send.
pub fn range_response(headers: &HeaderMap, size: u64) -> Result<RangeAnswer, ApiError> {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if size == 0 {
        // hf-hub 0.4 probes with bytes=0-0 and needs Content-Range even for empty files.
        if headers.contains_key(header::RANGE) {
            h.insert(header::CONTENT_RANGE, HeaderValue::from_static("bytes */0"));
        }
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        return Ok(RangeAnswer { status: StatusCode::OK, range: None, headers: h });
    }
    match parse_range(headers, size) {
        Ok(None) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            Ok(RangeAnswer { status: StatusCode::OK, range: None, headers: h })
        }
        Ok(Some((start, end))) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            Ok(RangeAnswer { status: StatusCode::PARTIAL_CONTENT, range: Some((start, end)), headers: h })
        }
        Err(()) => Err(ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("range not satisfiable for {size} bytes"))
            .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        parse_range(&h, size)
    }

    #[test]
    fn ranges_clamp_past_the_end() {
        assert_eq!(range("bytes=10-19", 100), Ok(Some((10, 19))));
        assert_eq!(range("bytes=0-100", 100), Ok(Some((0, 99))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-5", 100), Ok(Some((95, 99))));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("items=0-1", 100), Ok(None));
    }
}
