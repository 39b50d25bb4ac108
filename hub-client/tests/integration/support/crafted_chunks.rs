//! Data crafted so that chunk boundaries fall on the edge cases of the reference chunker (shared
//! by the unit tests of `xet::chunker` and the comparison with hf_xet): a gear-hash match in the
//! 64 bytes before the 8 KiB minimum (ignored) followed by one just after it, and a match exactly
//! at the minimum. Random data meets these rarely; a wrong skip or minimum would go unnoticed.

const MIN: usize = 8 * 1024;
/// Where the reference starts hashing a chunk: 65 bytes before the minimum.
const HASH_START: usize = MIN - 65;
const MASK: u64 = 0xFFFF_0000_0000_0000;

struct Rng(u64);

impl Rng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 24) as u8
            })
            .collect()
    }
}

/// Hashes `bytes` from `state`; returns the final state and the 1-based positions of matches.
fn gear(state: u64, bytes: &[u8]) -> (u64, Vec<usize>) {
    let mut h = gearhash::Hasher::default();
    h.set_hash(state);
    let mut matches = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        h.update(std::slice::from_ref(b));
        if h.is_match(MASK) {
            matches.push(i + 1);
        }
    }
    (h.get_hash(), matches)
}

/// A chunk whose only boundary candidates are an ignored match before the minimum (exactly
/// one byte before it when `last_byte`) and then the first match after it, at a chunk size in
/// `(MIN, MIN + 56]`.
fn chunk_after_early_match(rng: &mut Rng, last_byte: bool) -> Vec<u8> {
    let mut chunk = rng.bytes(HASH_START);
    let (state, tail) = loop {
        let w = rng.bytes(MIN - HASH_START);
        let (state, m) = gear(0, &w);
        // A match inside, none at the very end (that one would be a boundary at MIN).
        let early = if last_byte { m.contains(&(w.len() - 1)) } else { !m.is_empty() };
        if early && !m.contains(&w.len()) {
            break (state, w);
        }
    };
    chunk.extend(tail);
    loop {
        let w = rng.bytes(56);
        if let Some(&first) = gear(state, &w).1.first() {
            chunk.extend(&w[..first]);
            return chunk;
        }
    }
}

/// A chunk cut exactly at the minimum size.
fn chunk_at_min(rng: &mut Rng) -> Vec<u8> {
    let mut chunk = rng.bytes(HASH_START);
    loop {
        let w = rng.bytes(MIN - HASH_START);
        if gear(0, &w).1.contains(&w.len()) {
            chunk.extend(w);
            return chunk;
        }
    }
}

/// Crafted chunks, `rounds` times the three kinds (a match before the minimum, one exactly a
/// byte before it, one exactly at it), then `tail` random bytes. Returns the data and the sizes
/// of the crafted chunks.
pub fn crafted(rounds: usize, tail: usize, seed: u64) -> (Vec<u8>, Vec<usize>) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..rounds {
        for c in [chunk_after_early_match(&mut rng, false), chunk_after_early_match(&mut rng, true), chunk_at_min(&mut rng)] {
            sizes.push(c.len());
            data.extend(c);
        }
    }
    data.extend(rng.bytes(tail));
    (data, sizes)
}
