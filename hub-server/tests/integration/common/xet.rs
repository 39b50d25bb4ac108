//! Building what a Xet client uploads (xorbs and shards, as hf_xet 1.8 lays them out) with
//! xet-core-structures, so tests can send valid ones and break them in exactly one place.
#![allow(dead_code, clippy::unwrap_used)]

use sha2::Digest;
use xet_core_structures::merklehash::{compute_data_hash, file_hash, xorb_hash, MerkleHash};
use xet_core_structures::metadata_shard::chunk_verification::range_hash_from_chunks;
use xet_core_structures::metadata_shard::file_structs::{
    FileDataSequenceEntry, FileDataSequenceHeader, FileMetadataExt, FileVerificationEntry,
};
use xet_core_structures::metadata_shard::xorb_structs::{XorbChunkSequenceEntry, XorbChunkSequenceHeader};
use xet_core_structures::xorb_object::{serialize_chunk, CompressionScheme};

/// A xorb made of `chunks`, with its upload body (no footer, as hf_xet sends it).
pub struct TestXorb {
    pub chunks: Vec<Vec<u8>>,
    pub hashes: Vec<MerkleHash>,
    pub hash: MerkleHash,
    pub body: Vec<u8>,
}

impl TestXorb {
    pub fn new(chunks: Vec<Vec<u8>>) -> TestXorb {
        let hashes: Vec<MerkleHash> = chunks.iter().map(|c| compute_data_hash(c)).collect();
        let hash = xorb_hash(&hashes.iter().zip(&chunks).map(|(h, c)| (*h, c.len() as u64)).collect::<Vec<_>>());
        let mut body = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            // Mix the schemes so both decompressors are exercised.
            let scheme = if i % 2 == 0 { CompressionScheme::LZ4 } else { CompressionScheme::ByteGrouping4LZ4 };
            serialize_chunk(c, &mut body, scheme).unwrap();
        }
        TestXorb { chunks, hashes, hash, body }
    }

    pub fn hex(&self) -> String {
        self.hash.hex()
    }
}

/// Pseudo-random data (xorshift), half of it compressible, reproducible from `seed`.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|i| {
            if (i / 4096) % 2 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            } else {
                (i % 97) as u8
            }
        })
        .collect()
}

/// Splits data into chunks of the given sizes (the last takes the rest).
pub fn split(data: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    for &s in sizes {
        out.push(data[at..at + s].to_vec());
        at += s;
    }
    if at < data.len() {
        out.push(data[at..].to_vec());
    }
    out
}

/// One term of a file: chunks `[start, end)` of a xorb.
#[derive(Clone)]
pub struct TestTerm<'a> {
    pub xorb: &'a TestXorb,
    pub start: usize,
    pub end: usize,
}

impl TestTerm<'_> {
    /// The term's chunks (clamped: negative tests name ranges the xorb does not have).
    pub fn chunks(&self) -> &[Vec<u8>] {
        let end = self.end.min(self.xorb.chunks.len());
        &self.xorb.chunks[self.start.min(end)..end]
    }

    fn hashes(&self) -> &[MerkleHash] {
        let end = self.end.min(self.xorb.hashes.len());
        &self.xorb.hashes[self.start.min(end)..end]
    }
}

/// A file made of terms, and how to describe it in a shard.
pub struct TestFile<'a> {
    pub terms: Vec<TestTerm<'a>>,
    /// Overrides for negative tests.
    pub file_hash: Option<MerkleHash>,
    pub sha256: Option<String>,
    pub verification: bool,
    pub metadata_ext: bool,
    pub bad_verification: Option<usize>,
}

impl<'a> TestFile<'a> {
    pub fn new(terms: Vec<TestTerm<'a>>) -> TestFile<'a> {
        TestFile { terms, file_hash: None, sha256: None, verification: true, metadata_ext: true, bad_verification: None }
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.terms.iter().flat_map(|t| t.chunks().concat()).collect()
    }

    pub fn hash(&self) -> MerkleHash {
        let chunks: Vec<(MerkleHash, u64)> = self
            .terms
            .iter()
            .flat_map(|t| (t.start..t.end.min(t.xorb.chunks.len())).map(move |i| (t.xorb.hashes[i], t.xorb.chunks[i].len() as u64)))
            .collect();
        file_hash(&chunks)
    }

    pub fn sha256(&self) -> String {
        self.sha256.clone().unwrap_or_else(|| hex::encode(sha2::Sha256::digest(self.bytes())))
    }
}

const TAG: [u8; 32] = [
    b'H', b'F', b'R', b'e', b'p', b'o', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0, 85, 105, 103, 69, 106, 123, 129, 87, 131, 165,
    189, 217, 92, 205, 209, 74, 169,
];

/// A shard as hf_xet uploads it: header with footer_size 0, file blocks, CAS-info blocks of the
/// new xorbs, no footer.
pub fn shard(files: &[TestFile], new_xorbs: &[&TestXorb]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&TAG);
    out.extend_from_slice(&2u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    for f in files {
        let hash = f.file_hash.unwrap_or_else(|| f.hash());
        FileDataSequenceHeader::new(hash, f.terms.len(), f.verification, f.metadata_ext).serialize(&mut out).unwrap();
        for t in &f.terms {
            let bytes: usize = t.chunks().iter().map(Vec::len).sum();
            FileDataSequenceEntry::new(t.xorb.hash, bytes as u32, t.start as u32, t.end as u32).serialize(&mut out).unwrap();
        }
        if f.verification {
            for (i, t) in f.terms.iter().enumerate() {
                let mut h = range_hash_from_chunks(t.hashes());
                if f.bad_verification == Some(i) {
                    h = MerkleHash::random_from_seed(99);
                }
                FileVerificationEntry::new(h).serialize(&mut out).unwrap();
            }
        }
        if f.metadata_ext {
            let sha: [u8; 32] = hex::decode(f.sha256()).unwrap().try_into().unwrap();
            FileMetadataExt::new(MerkleHash::from_be_bytes(sha)).serialize(&mut out).unwrap();
        }
    }
    FileDataSequenceHeader::bookend().serialize(&mut out).unwrap();
    for x in new_xorbs {
        let total: usize = x.chunks.iter().map(Vec::len).sum();
        XorbChunkSequenceHeader::new(x.hash, x.chunks.len(), total as u32).serialize(&mut out).unwrap();
        let mut at = 0u32;
        for (h, c) in x.hashes.iter().zip(&x.chunks) {
            XorbChunkSequenceEntry::new(*h, c.len() as u32, at).serialize(&mut out).unwrap();
            at += c.len() as u32;
        }
    }
    XorbChunkSequenceHeader::bookend().serialize(&mut out).unwrap();
    out
}
