//! Reading xorb chunks as bytes arrive: each chunk is an 8-byte header
//! `[version 0][compressed u24][scheme][uncompressed u24]` and its compressed bytes. Used to
//! check uploads (every chunk decompresses to its stated size and hashes into the xorb's hash)
//! and to reassemble files for clients that do not speak Xet, one chunk in memory at a time.

use bytes::{Buf, Bytes, BytesMut};
use xet_core_structures::merklehash::{compute_data_hash, MerkleHash};
use xet_core_structures::xorb_object::byte_grouping::bg4::bg4_regroup;
use xet_core_structures::xorb_object::{parse_chunk_header, CompressionScheme, XORB_CHUNK_HEADER_LENGTH};

/// hf_xet's limits: chunks unpack to at most 128 KiB; stored forms are at most twice that.
pub const MAX_CHUNK: u32 = 128 * 1024;
const MAX_COMPRESSED: u32 = 2 * MAX_CHUNK;
/// A xorb holds at most 8192 chunks and 64 MiB of unpacked data.
pub const MAX_CHUNKS: usize = 8192;
pub const MAX_UNPACKED: u64 = 64 * 1024 * 1024;
/// The footer an older client may append starts with this ident; parsing stops there.
const FOOTER_IDENT: &[u8] = b"XETBLOB";

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk {index}: {message}")]
    Invalid { index: usize, message: String },
    #[error("the xorb ends inside chunk {0}")]
    Truncated(usize),
}

/// A whole chunk: its stored bytes (header included) and what they unpack to.
pub struct Chunk {
    pub stored: Bytes,
    pub data: Vec<u8>,
}

/// Splits a byte stream into chunks. Feed bytes with `push`, then take chunks with `next`.
#[derive(Default)]
pub struct ChunkReader {
    buf: BytesMut,
    index: usize,
    /// A footer began: everything after it is ignored.
    footer: bool,
}

impl ChunkReader {
    pub fn push(&mut self, data: &[u8]) {
        if !self.footer {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete chunk, if its bytes have all arrived.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, ChunkError> {
        if self.footer || self.buf.len() < XORB_CHUNK_HEADER_LENGTH {
            return Ok(None);
        }
        if self.buf.starts_with(FOOTER_IDENT) {
            self.footer = true;
            self.buf.clear();
            return Ok(None);
        }
        let index = self.index;
        let invalid = |message: String| ChunkError::Invalid { index, message };
        let mut header = [0u8; XORB_CHUNK_HEADER_LENGTH];
        header.copy_from_slice(&self.buf[..XORB_CHUNK_HEADER_LENGTH]);
        let parsed = parse_chunk_header(header).map_err(|e| invalid(format!("bad chunk header: {e}")))?;
        if parsed.version != 0 {
            return Err(invalid(format!("unknown chunk version {}", parsed.version)));
        }
        let (compressed, unpacked) = (parsed.get_compressed_length(), parsed.get_uncompressed_length());
        if compressed > MAX_COMPRESSED || unpacked > MAX_CHUNK || unpacked == 0 {
            return Err(invalid(format!("chunk sizes {compressed} stored / {unpacked} unpacked are out of bounds")));
        }
        let total = XORB_CHUNK_HEADER_LENGTH + compressed as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let stored = self.buf.split_to(total).freeze();
        let scheme = parsed.get_compression_scheme().map_err(|e| invalid(format!("unknown compression scheme: {e}")))?;
        let data = unpack(scheme, &stored[XORB_CHUNK_HEADER_LENGTH..], unpacked).map_err(invalid)?;
        self.index += 1;
        Ok(Some(Chunk { stored, data }))
    }

    /// Call when the input has ended: anything left but a footer is a truncated chunk.
    pub fn finish(&self) -> Result<(), ChunkError> {
        if !self.footer && self.buf.has_remaining() {
            return Err(ChunkError::Truncated(self.index));
        }
        Ok(())
    }
}

/// Decompresses into at most `size` bytes: a frame that would unpack to more (a bomb) stops at
/// the limit instead of growing memory.
fn unpack(scheme: CompressionScheme, stored: &[u8], size: u32) -> Result<Vec<u8>, String> {
    use std::io::Read;
    if scheme == CompressionScheme::None {
        if stored.len() != size as usize {
            return Err(format!("an uncompressed chunk of {} bytes claims {size}", stored.len()));
        }
        return Ok(stored.to_vec());
    }
    let mut out = Vec::with_capacity(size as usize);
    lz4_flex::frame::FrameDecoder::new(stored)
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("does not decompress: {e}"))?;
    if out.len() != size as usize {
        return Err(format!(
            "unpacks to {}{} bytes, not the {size} its header states",
            out.len(),
            if out.len() > size as usize { "+" } else { "" }
        ));
    }
    match scheme {
        CompressionScheme::ByteGrouping4LZ4 => Ok(bg4_regroup(&out)),
        _ => Ok(out),
    }
}

pub fn chunk_hash(data: &[u8]) -> MerkleHash {
    compute_data_hash(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xet_core_structures::xorb_object::serialize_chunk;

    fn stored(data: &[u8], scheme: CompressionScheme) -> Vec<u8> {
        let mut out = Vec::new();
        serialize_chunk(data, &mut out, scheme).unwrap();
        out
    }

    #[test]
    fn chunks_come_out_whole_whatever_the_split() {
        let a: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..9_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut body = stored(&a, CompressionScheme::LZ4);
        body.extend(stored(&b, CompressionScheme::ByteGrouping4LZ4));
        body.extend(stored(&b, CompressionScheme::None));
        body.extend_from_slice(b"XETBLOB footer bytes that are ignored");
        for split in [1usize, 7, 8, 9, 4096, body.len()] {
            let mut r = ChunkReader::default();
            let mut got = Vec::new();
            for piece in body.chunks(split) {
                r.push(piece);
                while let Some(c) = r.next_chunk().unwrap() {
                    got.push(c.data);
                }
            }
            r.finish().unwrap();
            assert_eq!(got, vec![a.clone(), b.clone(), b.clone()], "split {split}");
        }
    }

    #[test]
    fn a_frame_that_unpacks_past_its_stated_size_stops_at_it() {
        // 8 MiB of zeros compress to a few KiB; the header claims 1000 bytes.
        let frame = xet_core_structures::xorb_object::lz4_compress_from_slice(&vec![0u8; 8 << 20]).unwrap();
        let mut body = vec![0u8];
        body.extend_from_slice(&(frame.len() as u32).to_le_bytes()[..3]);
        body.push(CompressionScheme::LZ4 as u8);
        body.extend_from_slice(&1000u32.to_le_bytes()[..3]);
        body.extend_from_slice(&frame);
        let mut r = ChunkReader::default();
        r.push(&body);
        match r.next_chunk() {
            Err(ChunkError::Invalid { message, .. }) => assert!(message.contains("1001+ bytes"), "{message}"),
            Ok(_) => panic!("a bomb was accepted"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn lies_about_sizes_are_refused() {
        let a = vec![7u8; 5000];
        let mut body = stored(&a, CompressionScheme::LZ4);
        // Claim one byte more unpacked than the frame holds.
        body[5] = body[5].wrapping_add(1);
        let mut r = ChunkReader::default();
        r.push(&body);
        assert!(matches!(r.next_chunk(), Err(ChunkError::Invalid { index: 0, .. })));
        // A raw chunk cut short.
        let mut r = ChunkReader::default();
        let body = stored(&a, CompressionScheme::None);
        r.push(&body[..100]);
        assert!(r.next_chunk().unwrap().is_none());
        assert!(matches!(r.finish(), Err(ChunkError::Truncated(0))));
    }
}
