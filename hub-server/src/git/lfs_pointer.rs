//! The git-lfs pointer format: three lines, LF endings, in this order.

use crate::storage::is_sha256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsPointer {
    pub oid: String,
    pub size: u64,
}

const VERSION_LINE: &str = "version https://git-lfs.github.com/spec/v1";
/// Pointers are tiny; anything bigger is a regular file.
pub const MAX_POINTER_SIZE: usize = 1024;

impl LfsPointer {
    pub fn encode(&self) -> String {
        format!("{VERSION_LINE}\noid sha256:{}\nsize {}\n", self.oid, self.size)
    }

    pub fn parse(data: &[u8]) -> Option<LfsPointer> {
        if data.len() > MAX_POINTER_SIZE {
            return None;
        }
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.lines();
        if lines.next()? != VERSION_LINE {
            return None;
        }
        let (mut oid, mut size) = (None, None);
        for line in lines {
            if let Some(v) = line.strip_prefix("oid sha256:") {
                oid = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("size ") {
                size = v.parse().ok();
            }
        }
        let oid = oid.filter(|o| is_sha256(o))?;
        Some(LfsPointer { oid, size: size? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_roundtrip() {
        let p = LfsPointer { oid: "a".repeat(64), size: 5000 };
        let text = p.encode();
        assert!(text.starts_with("version https://git-lfs.github.com/spec/v1\noid sha256:aaaa"));
        assert_eq!(LfsPointer::parse(text.as_bytes()), Some(p));
        assert_eq!(LfsPointer::parse(b"hello"), None);
        assert_eq!(LfsPointer::parse(b"version https://git-lfs.github.com/spec/v1\noid sha256:xyz\nsize 1\n"), None);
    }
}
