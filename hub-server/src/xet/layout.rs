//! Where a Xet file's bytes are: the chunks of each stored xorb, a file's terms, and the walk
//! from a byte range of a file to the chunk ranges that hold it (hf_xet's
//! `compute_reconstruction_ranges`, which its client relies on term by term).

use xet_core_structures::merklehash::MerkleHash;

const HASH: usize = 32;
const CHUNK_RECORD: usize = HASH + 8;
const TERM_RECORD: usize = HASH + 12;

/// One chunk of a stored xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub hash: MerkleHash,
    /// Offset just past this chunk (header included) in the stored xorb.
    pub end: u32,
    /// Unpacked size.
    pub size: u32,
}

/// A stored xorb's chunk table.
#[derive(Debug, Clone)]
pub struct XorbLayout {
    pub hash: MerkleHash,
    pub chunks: Vec<ChunkMeta>,
}

impl XorbLayout {
    /// Stored bytes `[start, end)` holding chunks `[first, last)`.
    pub fn byte_range(&self, first: u32, last: u32) -> Option<(u64, u64)> {
        if first >= last || last as usize > self.chunks.len() {
            return None;
        }
        let start = if first == 0 { 0 } else { self.chunks[first as usize - 1].end };
        Some((start as u64, self.chunks[last as usize - 1].end as u64))
    }

    pub fn chunk_sizes(&self, first: u32, last: u32) -> &[ChunkMeta] {
        let (a, b) = (first as usize, (last as usize).min(self.chunks.len()));
        if a >= b {
            &[]
        } else {
            &self.chunks[a..b]
        }
    }
}

pub fn encode_chunks(chunks: &[ChunkMeta]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * CHUNK_RECORD);
    for c in chunks {
        out.extend_from_slice(c.hash.as_bytes());
        out.extend_from_slice(&c.end.to_le_bytes());
        out.extend_from_slice(&c.size.to_le_bytes());
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn decode_chunks(blob: &[u8]) -> Option<Vec<ChunkMeta>> {
    if blob.len() % CHUNK_RECORD != 0 {
        return None;
    }
    blob.chunks_exact(CHUNK_RECORD)
        .map(|r| Some(ChunkMeta { hash: MerkleHash::from_slice(&r[..HASH]).ok()?, end: u32_at(r, HASH), size: u32_at(r, HASH + 4) }))
        .collect()
}

/// Chunks `[start, end)` of xorb `xorb`, unpacking to `unpacked` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub xorb: MerkleHash,
    pub start: u32,
    pub end: u32,
    pub unpacked: u32,
}

pub fn encode_terms(terms: &[Term]) -> Vec<u8> {
    let mut out = Vec::with_capacity(terms.len() * TERM_RECORD);
    for t in terms {
        out.extend_from_slice(t.xorb.as_bytes());
        out.extend_from_slice(&t.start.to_le_bytes());
        out.extend_from_slice(&t.end.to_le_bytes());
        out.extend_from_slice(&t.unpacked.to_le_bytes());
    }
    out
}

pub fn decode_terms(blob: &[u8]) -> Option<Vec<Term>> {
    if blob.len() % TERM_RECORD != 0 {
        return None;
    }
    blob.chunks_exact(TERM_RECORD)
        .map(|r| {
            Some(Term {
                xorb: MerkleHash::from_slice(&r[..HASH]).ok()?,
                start: u32_at(r, HASH),
                end: u32_at(r, HASH + 4),
                unpacked: u32_at(r, HASH + 8),
            })
        })
        .collect()
}

/// The terms of a file that hold some of its bytes `[first, last]`.
pub fn overlapping(terms: &[Term], first: u64, last: u64) -> impl Iterator<Item = &Term> {
    let mut pos = 0u64;
    terms
        .iter()
        .map(move |t| {
            let start = pos;
            pos += t.unpacked as u64;
            (start, pos, t)
        })
        .skip_while(move |(_, end, _)| *end <= first)
        .take_while(move |(start, _, _)| *start <= last)
        .map(|(_, _, t)| t)
}

/// The terms that cover bytes `[first, last]` of a file, trimmed to whole chunks: leading chunks
/// that end before `first` and trailing chunks that start after `last` are dropped. The first
/// term's bytes start `offset` bytes before `first`; only the last term may run past `last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    pub offset: u64,
    pub terms: Vec<Term>,
}

/// Walks a file's terms; `layout` gives each xorb's chunk table. None when the stored terms do
/// not fit the xorbs (a corrupt record).
pub fn plan_range<'a>(
    terms: &[Term],
    first: u64,
    last: u64,
    mut layout: impl FnMut(&MerkleHash) -> Option<&'a XorbLayout>,
) -> Option<RangePlan> {
    let mut plan = RangePlan { offset: 0, terms: Vec::new() };
    let mut pos = 0u64;
    for t in terms {
        let (t_start, t_end) = (pos, pos + t.unpacked as u64);
        pos = t_end;
        if t_end <= first {
            continue;
        }
        if t_start > last {
            break;
        }
        let chunks = layout(&t.xorb)?.chunk_sizes(t.start, t.end);
        if chunks.len() != (t.end - t.start) as usize {
            return None;
        }
        let (mut cs, mut ce) = (t.start, t.end);
        let mut at = t_start;
        if plan.terms.is_empty() {
            for c in chunks {
                if at + c.size as u64 > first {
                    break;
                }
                at += c.size as u64;
                cs += 1;
            }
            plan.offset = first - at;
        }
        let mut unpacked = 0u64;
        let mut chunk_start = at;
        for (i, c) in chunks.iter().enumerate().skip((cs - t.start) as usize) {
            if chunk_start > last {
                ce = t.start + i as u32;
                break;
            }
            unpacked += c.size as u64;
            chunk_start += c.size as u64;
        }
        if cs >= ce {
            return None;
        }
        plan.terms.push(Term { xorb: t.xorb, start: cs, end: ce, unpacked: unpacked as u32 });
    }
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> MerkleHash {
        MerkleHash::random_from_seed(n)
    }

    /// Two xorbs: A with chunks of 10, 20, 30 bytes; B with 5, 5.
    fn layouts() -> (XorbLayout, XorbLayout) {
        let mk = |h: MerkleHash, sizes: &[u32]| {
            let mut end = 0;
            let chunks = sizes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    end += 8 + s / 2;
                    ChunkMeta { hash: hash(100 + i as u64), end, size: *s }
                })
                .collect();
            XorbLayout { hash: h, chunks }
        };
        (mk(hash(1), &[10, 20, 30]), mk(hash(2), &[5, 5]))
    }

    #[test]
    fn ranges_keep_only_the_chunks_they_touch() {
        let (a, b) = layouts();
        // The file: A[1..3) (50 bytes), then B[0..2) (10 bytes): 60 bytes.
        let terms = [Term { xorb: a.hash, start: 1, end: 3, unpacked: 50 }, Term { xorb: b.hash, start: 0, end: 2, unpacked: 10 }];
        let find = |h: &MerkleHash| {
            if *h == a.hash {
                Some(&a)
            } else if *h == b.hash {
                Some(&b)
            } else {
                None
            }
        };
        let whole = plan_range(&terms, 0, 59, find).unwrap();
        assert_eq!(whole, RangePlan { offset: 0, terms: terms.to_vec() });
        // Bytes 25..=52: inside A's chunk 2 (file bytes 20..50) and B's chunk 0 (50..55).
        let mid = plan_range(&terms, 25, 52, find).unwrap();
        assert_eq!(mid.offset, 5);
        assert_eq!(
            mid.terms,
            vec![Term { xorb: a.hash, start: 2, end: 3, unpacked: 30 }, Term { xorb: b.hash, start: 0, end: 1, unpacked: 5 }]
        );
        // One byte at the very end.
        let tail = plan_range(&terms, 59, 59, find).unwrap();
        assert_eq!(tail, RangePlan { offset: 4, terms: vec![Term { xorb: b.hash, start: 1, end: 2, unpacked: 5 }] });
        // A term that names chunks the xorb does not have is refused, not trusted.
        let bad = [Term { xorb: b.hash, start: 0, end: 3, unpacked: 10 }];
        assert!(plan_range(&bad, 0, 9, find).is_none());
        assert_eq!(a.byte_range(1, 3), Some((13, 54)));
        assert_eq!(a.byte_range(0, 1), Some((0, 13)));
        assert_eq!(a.byte_range(2, 4), None);
    }

    #[test]
    fn blobs_roundtrip() {
        let (a, _) = layouts();
        assert_eq!(decode_chunks(&encode_chunks(&a.chunks)).unwrap(), a.chunks);
        let terms = vec![Term { xorb: a.hash, start: 3, end: 9, unpacked: 77 }];
        assert_eq!(decode_terms(&encode_terms(&terms)).unwrap(), terms);
        assert!(decode_terms(&[0u8; 5]).is_none());
    }
}
