//! Building what a Xet client uploads, as hf_xet 1.8 lays it out (xet-core-structures does the
//! serializing and hashing), with every field a target may want to get wrong exposed.

use sha2::Digest;
use xet_core_structures::merklehash::{compute_data_hash, file_hash, xorb_hash, MerkleHash};
use xet_core_structures::metadata_shard::chunk_verification::range_hash_from_chunks;
use xet_core_structures::metadata_shard::file_structs::{
    FileDataSequenceEntry, FileDataSequenceHeader, FileMetadataExt, FileVerificationEntry,
};
use xet_core_structures::metadata_shard::xorb_structs::{XorbChunkSequenceEntry, XorbChunkSequenceHeader};
use xet_core_structures::xorb_object::{serialize_chunk, CompressionScheme};

/// A xorb and its upload body (no footer, as hf_xet sends it).
#[derive(Clone)]
pub struct Xorb {
    pub chunks: Vec<Vec<u8>>,
    pub hashes: Vec<MerkleHash>,
    pub hash: MerkleHash,
    pub body: Vec<u8>,
}

/// The compression scheme of a chunk by number (0 none, 1 LZ4, 2 byte-grouping + LZ4).
pub fn scheme(n: u8) -> CompressionScheme {
    match n % 3 {
        0 => CompressionScheme::None,
        1 => CompressionScheme::LZ4,
        _ => CompressionScheme::ByteGrouping4LZ4,
    }
}

impl Xorb {
    /// Chunks stored alternately with LZ4 and byte-grouping + LZ4.
    pub fn new(chunks: Vec<Vec<u8>>) -> Xorb {
        let schemes: Vec<u8> = (0..chunks.len()).map(|i| 1 + (i % 2) as u8).collect();
        Xorb::with_schemes(chunks, &schemes)
    }

    pub fn with_schemes(chunks: Vec<Vec<u8>>, schemes: &[u8]) -> Xorb {
        let hashes: Vec<MerkleHash> = chunks.iter().map(|c| compute_data_hash(c)).collect();
        let hash = xorb_hash(&hashes.iter().zip(&chunks).map(|(h, c)| (*h, c.len() as u64)).collect::<Vec<_>>());
        let mut body = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            serialize_chunk(c, &mut body, scheme(schemes.get(i).copied().unwrap_or(1))).unwrap();
        }
        Xorb { chunks, hashes, hash, body }
    }

    pub fn hex(&self) -> String {
        self.hash.hex()
    }
}

/// Pseudo-random bytes (xorshift), every other 512-byte stretch compressible; the same for a seed.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if (i / 512) % 2 == 0 {
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

/// The fixture's two xorbs: A of three chunks, B of two (small, so seeds stay small).
pub fn fixture_xorbs() -> (Xorb, Xorb) {
    let d = data(7, 4000);
    let a = Xorb::new(vec![d[..700].to_vec(), d[700..2200].to_vec(), d[2200..2500].to_vec()]);
    let b = Xorb::new(vec![d[2500..3400].to_vec(), d[3400..].to_vec()]);
    (a, b)
}

/// One term of a shard's file: chunks `[start, end)` of a xorb, described with overrides.
#[derive(Clone)]
pub struct TermSpec {
    pub xorb: Xorb,
    pub start: u32,
    pub end: u32,
    /// Replaces the unpacked byte count the entry states.
    pub unpacked: Option<u32>,
    /// Replaces the term's verification hash.
    pub bad_verification: bool,
}

impl TermSpec {
    /// The term's chunks (clamped: specs may name ranges the xorb does not have).
    pub fn chunks(&self) -> &[Vec<u8>] {
        let end = (self.end as usize).min(self.xorb.chunks.len());
        &self.xorb.chunks[(self.start as usize).min(end)..end]
    }
    fn hashes(&self) -> &[MerkleHash] {
        let end = (self.end as usize).min(self.xorb.hashes.len());
        &self.xorb.hashes[(self.start as usize).min(end)..end]
    }
    /// Whether the term names chunks the xorb has.
    pub fn in_bounds(&self) -> bool {
        self.start < self.end && self.end as usize <= self.xorb.chunks.len()
    }
}

/// A file a shard registers.
#[derive(Clone)]
pub struct FileSpec {
    pub terms: Vec<TermSpec>,
    pub file_hash: Option<MerkleHash>,
    pub sha256: Option<[u8; 32]>,
    pub verification: bool,
    pub metadata_ext: bool,
}

impl FileSpec {
    /// A file of all the chunks of each xorb in turn, described truthfully.
    pub fn whole(xorbs: &[&Xorb]) -> FileSpec {
        let terms = xorbs
            .iter()
            .map(|x| TermSpec { xorb: (*x).clone(), start: 0, end: x.chunks.len() as u32, unpacked: None, bad_verification: false })
            .collect();
        FileSpec { terms, file_hash: None, sha256: None, verification: true, metadata_ext: true }
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.terms.iter().flat_map(|t| t.chunks().concat()).collect()
    }

    /// The file hash of the chunks the terms name (clamped).
    pub fn hash(&self) -> MerkleHash {
        let chunks: Vec<(MerkleHash, u64)> =
            self.terms.iter().flat_map(|t| t.hashes().iter().zip(t.chunks()).map(|(h, c)| (*h, c.len() as u64))).collect();
        file_hash(&chunks)
    }

    pub fn stated_hash(&self) -> MerkleHash {
        self.file_hash.unwrap_or_else(|| self.hash())
    }

    pub fn sha256(&self) -> [u8; 32] {
        self.sha256.unwrap_or_else(|| sha2::Sha256::digest(self.bytes()).into())
    }

    /// Whether the description is the truth: what an honest client would send.
    pub fn truthful(&self) -> bool {
        self.file_hash.is_none()
            && self.sha256.is_none()
            && self.verification
            && self.metadata_ext
            && self.terms.iter().all(|t| t.in_bounds() && t.unpacked.is_none() && !t.bad_verification)
    }
}

/// The xorb section's entry for one xorb, with overrides.
#[derive(Clone)]
pub struct XorbSpec {
    pub xorb: Xorb,
    /// Chunks listed: fewer or more than the xorb has when set.
    pub num_chunks: Option<usize>,
    /// One chunk whose hash is replaced.
    pub bad_chunk: Option<usize>,
}

const TAG: [u8; 32] = [
    b'H', b'F', b'R', b'e', b'p', b'o', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0, 85, 105, 103, 69, 106, 123, 129, 87, 131, 165,
    189, 217, 92, 205, 209, 74, 169,
];

/// A shard as hf_xet uploads it: header with footer_size 0, file blocks, CAS-info blocks of
/// the new xorbs, no footer.
pub fn shard(files: &[FileSpec], xorbs: &[&Xorb]) -> Vec<u8> {
    let specs: Vec<XorbSpec> = xorbs.iter().map(|x| XorbSpec { xorb: (*x).clone(), num_chunks: None, bad_chunk: None }).collect();
    shard_with(files, &specs)
}

pub fn shard_with(files: &[FileSpec], xorbs: &[XorbSpec]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&TAG);
    out.extend_from_slice(&2u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    for f in files {
        FileDataSequenceHeader::new(f.stated_hash(), f.terms.len() as u32, f.verification, f.metadata_ext).serialize(&mut out).unwrap();
        for t in &f.terms {
            let bytes: usize = t.chunks().iter().map(Vec::len).sum();
            let unpacked = t.unpacked.unwrap_or(bytes as u32);
            FileDataSequenceEntry::new(t.xorb.hash, unpacked, t.start, t.end).serialize(&mut out).unwrap();
        }
        if f.verification {
            for t in &f.terms {
                let h = if t.bad_verification { MerkleHash::random_from_seed(99) } else { range_hash_from_chunks(t.hashes()) };
                FileVerificationEntry::new(h).serialize(&mut out).unwrap();
            }
        }
        if f.metadata_ext {
            FileMetadataExt::new(MerkleHash::from_be_bytes(f.sha256())).serialize(&mut out).unwrap();
        }
    }
    FileDataSequenceHeader::bookend().serialize(&mut out).unwrap();
    for x in xorbs {
        let n = x.num_chunks.unwrap_or(x.xorb.chunks.len());
        let total: usize = x.xorb.chunks.iter().take(n).map(Vec::len).sum();
        XorbChunkSequenceHeader::new(x.xorb.hash, n as u32, total as u32).serialize(&mut out).unwrap();
        let mut at = 0u32;
        for i in 0..n {
            let (h, len) = match (x.xorb.hashes.get(i), x.xorb.chunks.get(i)) {
                (Some(h), Some(c)) => (*h, c.len() as u32),
                _ => (MerkleHash::random_from_seed(i as u64), 1000),
            };
            let h = if x.bad_chunk == Some(i) { MerkleHash::random_from_seed(7) } else { h };
            XorbChunkSequenceEntry::new(h, len, at).serialize(&mut out).unwrap();
            at += len;
        }
    }
    XorbChunkSequenceHeader::bookend().serialize(&mut out).unwrap();
    out
}

/// Unpacks stored chunk bytes (headers included) that the hub served back.
pub fn unpack_chunks(stored: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut r = std::io::Cursor::new(stored);
    let mut out = Vec::new();
    while (r.position() as usize) < stored.len() {
        let mut chunk = Vec::new();
        xet_core_structures::xorb_object::deserialize_chunk_to_writer(&mut r, &mut chunk).map_err(|e| e.to_string())?;
        out.push(chunk);
    }
    Ok(out)
}
