//! Content-defined chunking, cut exactly where hf_xet 1.8 cuts (xet-data's `Chunker::default()`):
//! a gearhash rolling hash, a boundary after a byte where the top 16 bits of the hash are zero,
//! never before 8 KiB, always at 128 KiB. Equal boundaries are what make our chunk hashes, and
//! so dedup against files uploaded by huggingface_hub, work.

use bytes::Bytes;

/// The average chunk size the mask aims for.
pub const TARGET_CHUNK: usize = 64 * 1024;
pub const MIN_CHUNK: usize = TARGET_CHUNK / 8;
pub const MAX_CHUNK: usize = TARGET_CHUNK * 2;
/// `TARGET_CHUNK - 1` shifted to the top bits: the low bits of a gear hash depend on few bytes.
const MASK: u64 = ((TARGET_CHUNK - 1) as u64) << ((TARGET_CHUNK - 1) as u64).leading_zeros();
/// A gear hash depends on its last 64 bytes only, so hashing starts 65 bytes before the minimum
/// size (the reference skips exactly `MIN_CHUNK - 64 - 1` bytes of each chunk).
const HASH_START: usize = MIN_CHUNK - 64 - 1;

/// A streaming chunker: feed it bytes in any pieces, get the same chunks.
pub struct Chunker {
    hash: gearhash::Hasher<'static>,
    buf: Vec<u8>,
    /// Where the current chunk starts in `buf`.
    start: usize,
    /// How far into the current chunk the hash has looked.
    scanned: usize,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker { hash: gearhash::Hasher::default(), buf: Vec::with_capacity(2 * MAX_CHUNK), start: 0, scanned: 0 }
    }
}

impl Chunker {
    /// Adds bytes; returns the chunks they complete.
    pub fn update(&mut self, data: &[u8]) -> Vec<Bytes> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(len) = self.next_boundary() {
            out.push(Bytes::copy_from_slice(&self.buf[self.start..self.start + len]));
            self.start += len;
        }
        out
    }

    /// The last chunk: whatever is left (None for an empty tail).
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = &self.buf[self.start..];
        let last = (!rest.is_empty()).then(|| Bytes::copy_from_slice(rest));
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.hash.set_hash(0);
        last
    }

    /// The length of the chunk starting at `start`, if the bytes so far decide it.
    fn next_boundary(&mut self) -> Option<usize> {
        let available = self.buf.len() - self.start;
        if self.scanned < HASH_START {
            self.scanned = HASH_START.min(available);
        }
        let end = available.min(MAX_CHUNK);
        while self.scanned < end {
            let window = &self.buf[self.start + self.scanned..self.start + end];
            match self.hash.next_match(window, MASK) {
                Some(after) => {
                    self.scanned += after;
                    // A match inside the first 64 hashed bytes would still reflect the hash's
                    // starting state, so the minimum size is enforced after the fact.
                    if self.scanned >= MIN_CHUNK {
                        return Some(self.cut());
                    }
                }
                None => self.scanned = end,
            }
        }
        (self.scanned >= MAX_CHUNK).then(|| self.cut())
    }

    fn cut(&mut self) -> usize {
        let len = self.scanned;
        self.scanned = 0;
        self.hash.set_hash(0);
        len
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// Bytes from a xorshift generator (the integration tests use the same one).
    pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "../../tests/integration/support/crafted_chunks.rs"]
mod crafted_chunks;

#[cfg(test)]
mod tests {
    use super::tests_support::pseudo_random;
    use super::*;

    /// Matches in the 64 bytes before the minimum are ignored, the next one cuts; a match
    /// exactly at the minimum cuts there (tests/integration/xet_reference.rs checks hf_xet agrees).
    #[test]
    fn boundaries_at_the_minimum_follow_the_reference_rules() {
        let (data, sizes) = super::crafted_chunks::crafted(4, 50_000, 11);
        let got = chunk_all(&data, 10_000);
        assert_eq!(&got[..sizes.len()], &sizes[..]);
        for (i, s) in sizes.iter().enumerate() {
            let expected = if i % 3 == 2 { MIN_CHUNK..=MIN_CHUNK } else { MIN_CHUNK + 1..=MIN_CHUNK + 56 };
            assert!(expected.contains(s), "crafted chunk {i}: {s} bytes");
        }
    }

    fn chunk_all(data: &[u8], piece: usize) -> Vec<usize> {
        let mut c = Chunker::default();
        let mut sizes = Vec::new();
        for p in data.chunks(piece) {
            sizes.extend(c.update(p).iter().map(|b| b.len()));
        }
        sizes.extend(c.finish().map(|b| b.len()));
        sizes
    }

    #[test]
    fn the_mask_is_the_top_16_bits() {
        assert_eq!(MASK, 0xFFFF_0000_0000_0000);
        assert_eq!(HASH_START, 8127);
    }

    #[test]
    fn chunks_respect_the_size_rules_and_cover_the_input() {
        let data = pseudo_random(6 * 1024 * 1024 + 123, 42);
        let sizes = chunk_all(&data, 1 << 20);
        assert_eq!(sizes.iter().sum::<usize>(), data.len());
        let (last, body) = sizes.split_last().unwrap();
        assert!(*last > 0 && *last <= MAX_CHUNK);
        for s in body {
            assert!((MIN_CHUNK..=MAX_CHUNK).contains(s), "chunk of {s} bytes");
        }
        // Content-defined: the average lands near the target, not at a bound.
        let mean = data.len() / sizes.len();
        assert!((40_000..100_000).contains(&mean), "mean chunk {mean}");
    }

    #[test]
    fn boundaries_do_not_depend_on_how_bytes_arrive() {
        let data = pseudo_random(2 * 1024 * 1024, 7);
        let whole = chunk_all(&data, data.len());
        for piece in [1, 63, 64, 65, 4096, 8127, 8128, 70_000, 131_072] {
            assert_eq!(chunk_all(&data, piece), whole, "fed {piece} bytes at a time");
        }
    }

    #[test]
    fn constant_data_is_cut_at_the_maximum() {
        // Zero bytes never make the hash match: every chunk is 128 KiB.
        let sizes = chunk_all(&vec![0u8; 3 * MAX_CHUNK + 5], 100_000);
        assert_eq!(sizes, [MAX_CHUNK, MAX_CHUNK, MAX_CHUNK, 5]);
    }

    #[test]
    fn small_inputs_are_one_chunk() {
        assert_eq!(chunk_all(b"hello", 2), [5]);
        assert!(chunk_all(b"", 1).is_empty());
        assert_eq!(chunk_all(&pseudo_random(MIN_CHUNK, 1), 1000), [MIN_CHUNK]);
    }

    /// A boundary depends only on the 64 bytes before it: changing bytes of one chunk leaves
    /// later boundaries where they were, which is what dedup of edited files relies on.
    #[test]
    fn an_edit_moves_only_nearby_boundaries() {
        let data = pseudo_random(4 * 1024 * 1024, 9);
        let mut edited = data.clone();
        for b in &mut edited[1_000_000..1_000_100] {
            *b ^= 0x5a;
        }
        let ends = |sizes: Vec<usize>| -> std::collections::BTreeSet<usize> {
            sizes
                .iter()
                .scan(0, |pos, s| {
                    *pos += s;
                    Some(*pos)
                })
                .collect()
        };
        let before = ends(chunk_all(&data, 1 << 16));
        let after = ends(chunk_all(&edited, 1 << 16));
        let moved: Vec<_> = before.symmetric_difference(&after).collect();
        assert!(moved.iter().all(|&&p| (1_000_000..1_400_000).contains(&p)), "{moved:?}");
        assert!(before.iter().filter(|&&p| p > 1_400_000).all(|p| after.contains(p)));
    }
}
