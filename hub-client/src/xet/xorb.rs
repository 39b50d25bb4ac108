//! Xorbs: new chunks packed for upload, at most 64 MiB of data or 8192 chunks each, every chunk
//! compressed (LZ4, or LZ4 over byte-grouped data) when that makes it smaller.

use bytes::Bytes;
use xet_core_structures::merklehash::{xorb_hash, MerkleHash};
use xet_core_structures::metadata_shard::xorb_structs::{MDBXorbInfo, XorbChunkSequenceEntry, XorbChunkSequenceHeader};
use xet_core_structures::xorb_object::{serialize_chunk, CompressionScheme};

pub const MAX_XORB_BYTES: usize = 64 * 1024 * 1024;
pub const MAX_XORB_CHUNKS: usize = 8 * 1024;

/// Chunks gathered for one xorb.
#[derive(Default)]
pub(crate) struct XorbBuilder {
    chunks: Vec<(MerkleHash, Bytes)>,
    bytes: usize,
}

/// A xorb ready to go: its hash, the upload body (chunks only: the CAS adds the footer) and
/// the CAS-info block the shard lists it with.
pub(crate) struct SealedXorb {
    pub hash: MerkleHash,
    pub body: Vec<u8>,
    pub info: MDBXorbInfo,
}

impl XorbBuilder {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Whether a chunk of `len` bytes still fits.
    pub fn fits(&self, len: usize) -> bool {
        self.chunks.len() < MAX_XORB_CHUNKS && self.bytes + len <= MAX_XORB_BYTES
    }

    pub fn push(&mut self, hash: MerkleHash, data: Bytes) {
        self.bytes += data.len();
        self.chunks.push((hash, data));
    }

    /// The xorb hash of what was pushed.
    pub fn hash(&self) -> MerkleHash {
        let list: Vec<(MerkleHash, u64)> = self.chunks.iter().map(|(h, d)| (*h, d.len() as u64)).collect();
        xorb_hash(&list)
    }

    /// Compresses and serializes (CPU work: run it off the async threads).
    pub fn seal(self) -> std::io::Result<SealedXorb> {
        let hash = self.hash();
        let mut body = Vec::with_capacity(self.bytes + 8 * self.chunks.len());
        let mut entries = Vec::with_capacity(self.chunks.len());
        let mut offset = 0usize;
        for (h, data) in &self.chunks {
            // `Auto` picks LZ4 or BG4+LZ4 from the data; a chunk that does not shrink is stored raw.
            serialize_chunk(data, &mut body, CompressionScheme::Auto).map_err(std::io::Error::other)?;
            entries.push(XorbChunkSequenceEntry::new(*h, data.len() as u32, offset as u32));
            offset += data.len();
        }
        let info = MDBXorbInfo { metadata: XorbChunkSequenceHeader::new(hash, entries.len() as u32, offset as u32), chunks: entries };
        Ok(SealedXorb { hash, body, info })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xet_core_structures::merklehash::compute_data_hash;
    use xet_core_structures::xorb_object::{reconstruct_xorb_with_footer, XorbObject};

    fn chunk(data: Vec<u8>) -> (MerkleHash, Bytes) {
        (compute_data_hash(&data), Bytes::from(data))
    }

    #[test]
    fn sealed_xorbs_pass_the_reference_validator() {
        let mut b = XorbBuilder::default();
        let random = crate::xet::chunker::tests_support::pseudo_random(70_000, 3);
        let floats: Vec<u8> = (0..20_000).flat_map(|i| (i as f32 * 0.001).sin().to_le_bytes()).collect();
        let chunks = [chunk(random.clone()), chunk(vec![7u8; 50_000]), chunk(floats), chunk(random[..9000].to_vec())];
        for (h, d) in &chunks {
            b.push(*h, d.clone());
        }
        let expected = b.hash();
        let sealed = b.seal().unwrap();
        assert_eq!(sealed.hash, expected);

        // The CAS's own check: parse the chunks, recompute the xorb hash, append the footer.
        let mut stored = Vec::new();
        let (object, computed) = reconstruct_xorb_with_footer(&mut stored, &sealed.body).unwrap();
        assert_eq!(computed, sealed.hash);
        assert_eq!(object.info.num_chunks, 4);
        assert!(sealed.body.len() < 70_000 + 50_000 + 80_000, "repetitive chunks were compressed: {}", sealed.body.len());
        // Schemes: random data raw (0), constant bytes LZ4 (1); the float chunk is compressed either way.
        let scheme = |i: u32| {
            let (start, _) = object.get_byte_offset(i, i + 1).unwrap();
            sealed.body[start as usize + 4]
        };
        assert_eq!(scheme(0), 0);
        assert_ne!(scheme(1), 0);
        assert_ne!(scheme(2), 0);

        // Every chunk reads back to its bytes.
        let mut cursor = std::io::Cursor::new(&stored);
        let object = XorbObject::deserialize(&mut cursor).unwrap();
        for (i, (_, data)) in chunks.iter().enumerate() {
            let (s, e) = object.get_byte_offset(i as u32, i as u32 + 1).unwrap();
            let mut out = Vec::new();
            xet_core_structures::xorb_object::deserialize_chunk_to_writer(&mut &stored[s as usize..e as usize], &mut out).unwrap();
            assert_eq!(&out, data);
        }

        // The CAS-info block lists unpacked offsets and sizes.
        assert_eq!(sealed.info.metadata.num_bytes_in_xorb, 70_000 + 50_000 + 80_000 + 9000);
        assert_eq!(sealed.info.chunks[2].chunk_byte_range_start, 120_000);
        assert_eq!(sealed.info.chunks[3].unpacked_segment_bytes, 9000);
    }

    #[test]
    fn limits_are_64_mib_and_8192_chunks() {
        let mut b = XorbBuilder::default();
        b.push(MerkleHash::default(), Bytes::from(vec![0u8; MAX_XORB_BYTES - 10]));
        assert!(b.fits(10) && !b.fits(11));
        let mut b = XorbBuilder::default();
        for _ in 0..MAX_XORB_CHUNKS {
            b.push(MerkleHash::default(), Bytes::from_static(b"x"));
        }
        assert!(!b.fits(1));
    }
}
