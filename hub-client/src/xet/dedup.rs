//! What this upload may reference instead of sending: the chunks of xorbs known from the local
//! shard cache, from the CAS's global-dedup answers, and from this session's own new xorbs.

use std::collections::{HashMap, HashSet};
use xet_core_structures::merklehash::{HMACKey, MerkleHash};

/// A xorb the index knows, by its position in `DedupIndex::xorbs`.
pub(crate) type XorbId = usize;

pub(crate) struct KnownXorb {
    /// `None` while this session is still filling it.
    pub hash: Option<MerkleHash>,
    /// The HMAC key its chunk hashes are keyed with (global-dedup answers hide raw hashes).
    pub key: Option<HMACKey>,
    /// (chunk hash, keyed when `key` is set; unpacked size).
    pub chunks: Vec<(MerkleHash, u32)>,
}

/// Chunk hash (keyed with the table's key) → xorb and chunk index.
type ChunkTable = HashMap<MerkleHash, (XorbId, u32)>;

/// Chunk hash → where that chunk is stored.
#[derive(Default)]
pub(crate) struct DedupIndex {
    pub xorbs: Vec<KnownXorb>,
    /// One table per HMAC key; `None` holds plain hashes.
    tables: Vec<(Option<HMACKey>, ChunkTable)>,
    known: HashSet<MerkleHash>,
    chunks: usize,
}

impl DedupIndex {
    pub fn chunk_count(&self) -> usize {
        self.chunks
    }

    fn table(&mut self, key: Option<HMACKey>) -> usize {
        match self.tables.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.tables.push((key, HashMap::new()));
                self.tables.len() - 1
            }
        }
    }

    /// Adds a stored xorb (a key of all zeros means plain hashes). Returns its id.
    pub fn add_xorb(&mut self, hash: MerkleHash, key: HMACKey, chunks: Vec<(MerkleHash, u32)>) -> Option<XorbId> {
        if !self.known.insert(hash) {
            return None;
        }
        let key = (key != HMACKey::default()).then_some(key);
        let id = self.xorbs.len();
        let t = self.table(key);
        for (i, (h, _)) in chunks.iter().enumerate() {
            self.tables[t].1.entry(*h).or_insert((id, i as u32));
        }
        self.chunks += chunks.len();
        self.xorbs.push(KnownXorb { hash: Some(hash), key, chunks });
        Some(id)
    }

    /// Starts a xorb this session fills chunk by chunk.
    pub fn open_xorb(&mut self) -> XorbId {
        self.xorbs.push(KnownXorb { hash: None, key: None, chunks: Vec::new() });
        self.xorbs.len() - 1
    }

    /// Appends a new chunk to an open xorb; returns its index there.
    pub fn push_chunk(&mut self, xorb: XorbId, hash: MerkleHash, size: u32) -> u32 {
        let index = self.xorbs[xorb].chunks.len() as u32;
        self.xorbs[xorb].chunks.push((hash, size));
        let t = self.table(None);
        self.tables[t].1.entry(hash).or_insert((xorb, index));
        self.chunks += 1;
        index
    }

    pub fn seal(&mut self, xorb: XorbId, hash: MerkleHash) {
        self.known.insert(hash);
        self.xorbs[xorb].hash = Some(hash);
    }

    /// Where `chunk` is stored. `next` (the chunk after the current run) wins when it matches,
    /// so runs stay in one xorb and terms stay few.
    pub fn lookup(&self, chunk: &MerkleHash, next: Option<(XorbId, u32)>) -> Option<(XorbId, u32)> {
        if let Some((x, i)) = next {
            let known = &self.xorbs[x];
            let keyed = known.key.map_or(*chunk, |k| chunk.hmac(k));
            if known.chunks.get(i as usize).is_some_and(|(h, _)| *h == keyed) {
                return Some((x, i));
            }
        }
        self.tables.iter().find_map(|(key, table)| table.get(&key.map_or(*chunk, |k| chunk.hmac(k))).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xet_core_structures::merklehash::compute_data_hash;

    fn h(i: u32) -> MerkleHash {
        compute_data_hash(&i.to_le_bytes())
    }

    #[test]
    fn plain_keyed_and_open_xorbs_are_found() {
        let mut idx = DedupIndex::default();
        let a = idx.add_xorb(h(100), HMACKey::default(), vec![(h(1), 10), (h(2), 20)]).unwrap();
        let key = h(999);
        let b = idx.add_xorb(h(101), key, vec![(h(3).hmac(key), 30)]).unwrap();
        let open = idx.open_xorb();
        assert_eq!(idx.push_chunk(open, h(4), 40), 0);
        assert_eq!(idx.lookup(&h(2), None), Some((a, 1)));
        assert_eq!(idx.lookup(&h(3), None), Some((b, 0)), "keyed hashes match through the key");
        assert_eq!(idx.lookup(&h(4), None), Some((open, 0)));
        assert_eq!(idx.lookup(&h(5), None), None);
        assert!(idx.add_xorb(h(100), HMACKey::default(), vec![]).is_none(), "a xorb is indexed once");
    }

    #[test]
    fn the_continuation_of_a_run_wins() {
        let mut idx = DedupIndex::default();
        let first = idx.add_xorb(h(100), HMACKey::default(), vec![(h(1), 1), (h(2), 1)]).unwrap();
        let second = idx.add_xorb(h(101), HMACKey::default(), vec![(h(7), 1), (h(2), 1)]).unwrap();
        assert_eq!(idx.lookup(&h(2), None), Some((first, 1)));
        assert_eq!(idx.lookup(&h(2), Some((second, 1))), Some((second, 1)));
        assert_eq!(idx.lookup(&h(2), Some((second, 0))), Some((first, 1)));
    }
}
