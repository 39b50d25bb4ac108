//! Shards: the file → xorb-ranges records an upload registers, and the local shard cache that
//! lets later uploads to the same CAS skip chunks it already holds.

use super::dedup::{DedupIndex, XorbId};
use crate::error::{HubError, Result};
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;
use xet_core_structures::merklehash::{compute_data_hash, MerkleHash};
use xet_core_structures::metadata_shard::file_structs::{
    FileDataSequenceEntry, FileDataSequenceHeader, FileMetadataExt, FileVerificationEntry, MDBFileInfo,
};
use xet_core_structures::metadata_shard::shard_in_memory::MDBInMemoryShard;
use xet_core_structures::metadata_shard::xorb_structs::MDBXorbInfo;
use xet_core_structures::metadata_shard::{MDBShardInfo, Sha256};
use xet_core_structures::CoreError;

/// hf_xet keeps uploaded shards for three weeks (`MDB_SHARD_LOCAL_CACHE_EXPIRATION`); the CAS
/// keeps xorbs at least that long, so references from the cache stay valid.
pub const LOCAL_CACHE_EXPIRATION: Duration = Duration::from_secs(21 * 24 * 3600);
/// Expired shards are deleted a week after expiry (`MDB_SHARD_EXPIRATION_BUFFER`).
const EXPIRATION_BUFFER: u64 = 7 * 24 * 3600;
/// One shard upload holds at most this much (the CAS takes 64 MiB).
const MAX_SHARD_BYTES: u64 = 60 * 1024 * 1024;
/// The size of a shard footer.
const FOOTER_BYTES: usize = 200;

fn core(e: CoreError) -> HubError {
    HubError::InvalidResponse(format!("Xet shard: {e}"))
}

/// One run of a file's chunks stored consecutively in one xorb.
#[derive(Debug, Clone)]
pub(crate) struct FileTerm {
    pub xorb: XorbId,
    /// Chunk indices `[start, end)` in the xorb.
    pub start: u32,
    pub end: u32,
    pub bytes: u32,
    /// Proves the uploader holds these chunks: a keyed hash of their raw hashes.
    pub range_hash: MerkleHash,
}

/// A file as the shard records it.
#[derive(Debug, Clone)]
pub(crate) struct FileRecord {
    pub file_hash: MerkleHash,
    pub sha256: [u8; 32],
    pub terms: Vec<FileTerm>,
}

impl FileRecord {
    fn info(&self, index: &DedupIndex) -> Result<MDBFileInfo> {
        let mut segments = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            let xorb = index.xorbs[t.xorb].hash.ok_or_else(|| super::protocol_error("a file references a xorb never sealed"))?;
            segments.push(FileDataSequenceEntry::new(xorb, t.bytes, t.start, t.end));
        }
        Ok(MDBFileInfo {
            metadata: FileDataSequenceHeader::new(self.file_hash, segments.len() as u32, true, true),
            segments,
            verification: self.terms.iter().map(|t| FileVerificationEntry::new(t.range_hash)).collect(),
            // Stored so that the hash's string form is the usual sha256 hex (xet-protocol.md §3.1).
            metadata_ext: Some(FileMetadataExt::new(Sha256::from_be_bytes(self.sha256))),
        })
    }
}

/// The shards registering `files` and the new `xorbs`, each under the CAS's size limit.
pub(crate) fn build_shards(files: &[FileRecord], index: &DedupIndex, xorbs: Vec<MDBXorbInfo>) -> Result<Vec<MDBInMemoryShard>> {
    let mut shards = vec![MDBInMemoryShard::default()];
    let full = |s: &MDBInMemoryShard| !s.is_empty() && s.shard_file_size() > MAX_SHARD_BYTES;
    for x in xorbs {
        if shards.last().is_some_and(full) {
            shards.push(MDBInMemoryShard::default());
        }
        if let Some(s) = shards.last_mut() {
            s.add_xorb_block(x).map_err(core)?;
        }
    }
    for f in files {
        if shards.last().is_some_and(full) {
            shards.push(MDBInMemoryShard::default());
        }
        if let Some(s) = shards.last_mut() {
            s.add_file_reconstruction_info(f.info(index)?).map_err(core)?;
        }
    }
    shards.retain(|s| !s.is_empty());
    Ok(shards)
}

/// The full shard file, as the local cache keeps it: lookup tables, and a footer stamped with
/// its creation time and expiry.
pub(crate) fn serialize_for_cache(shard: &MDBInMemoryShard) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut info = MDBShardInfo::serialize_from(&mut out, shard, Some(LOCAL_CACHE_EXPIRATION)).map_err(core)?;
    info.metadata.shard_creation_timestamp = super::unix_now();
    let footer_at = out.len() - FOOTER_BYTES;
    out.truncate(footer_at);
    info.metadata.serialize(&mut out).map_err(core)?;
    Ok(out)
}

/// What `POST /v1/shards` takes: the shard without lookup tables and footer, its header saying
/// `footer_size = 0` (hf_xet's `read_shard_to_bytes_remove_footer`).
pub(crate) fn upload_form(full: &[u8]) -> Result<Vec<u8>> {
    let info = MDBShardInfo::load_from_reader(&mut Cursor::new(full)).map_err(core)?;
    let end = info.metadata.file_lookup_offset as usize;
    let mut out = full.get(..end).ok_or_else(|| super::protocol_error("shard shorter than its footer says"))?.to_vec();
    let mut header = info.header.clone();
    header.footer_size = 0;
    let mut head = Vec::with_capacity(48);
    header.serialize(&mut head).map_err(core)?;
    out[..head.len()].copy_from_slice(&head);
    Ok(out)
}

/// The HMAC key (all zeros: none) and the xorb blocks of a shard with a footer.
pub(crate) fn read_xorbs<R: Read + Seek>(reader: &mut R) -> Result<(MDBShardInfo, Vec<MDBXorbInfo>)> {
    let info = MDBShardInfo::load_from_reader(reader).map_err(core)?;
    let xorbs = info.read_all_xorb_blocks_full(reader).map_err(core)?;
    Ok((info, xorbs))
}

/// Adds the xorbs of a shard to the dedup index.
pub(crate) fn index_shard(index: &mut DedupIndex, info: &MDBShardInfo, xorbs: Vec<MDBXorbInfo>) {
    for x in xorbs {
        let chunks = x.chunks.iter().map(|c| (c.chunk_hash, c.unpacked_segment_bytes)).collect();
        index.add_xorb(x.metadata.xorb_hash, info.metadata.chunk_hash_hmac_key, chunks);
    }
}

/// A directory of shards for one CAS (`{xet cache}/{cas}/shard-cache/{hash}.mdb`).
pub(crate) struct ShardCache {
    pub dir: PathBuf,
}

impl ShardCache {
    /// Indexes the cached shards, newest first, up to `max_chunks` chunks; skips expired ones
    /// and deletes those a week past expiry. Unreadable files are skipped: the cache only
    /// saves bandwidth.
    pub fn load(&self, index: &mut DedupIndex, max_chunks: usize) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let now = super::unix_now();
        let mut shards: Vec<(u64, PathBuf)> = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if !is_shard_name(&path) {
                continue;
            }
            let Ok(info) = std::fs::File::open(&path)
                .map(BufReader::new)
                .map_err(HubError::from)
                .and_then(|mut f| MDBShardInfo::load_from_reader(&mut f).map_err(core))
            else {
                continue;
            };
            let expiry = info.metadata.shard_key_expiry;
            if expiry < now {
                if expiry.saturating_add(EXPIRATION_BUFFER) < now {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            shards.push((info.metadata.shard_creation_timestamp, path));
        }
        shards.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (_, path) in shards {
            if index.chunk_count() >= max_chunks {
                break;
            }
            if let Ok((info, xorbs)) =
                std::fs::File::open(&path).map(BufReader::new).map_err(HubError::from).and_then(|mut f| read_xorbs(&mut f))
            {
                index_shard(index, &info, xorbs);
            }
        }
    }

    /// Stores a shard (with footer) under its content hash, atomically.
    pub fn save(&self, shard: &[u8]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{}.mdb", compute_data_hash(shard).hex()));
        if !path.exists() {
            let tmp = self.dir.join(format!(".{}.mdb_temp", rand::random::<u64>()));
            std::fs::write(&tmp, shard)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(path)
    }
}

fn is_shard_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 68 && n.ends_with(".mdb") && n[..64].bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::chunker::tests_support::pseudo_random;
    use crate::xet::chunker::Chunker;
    use crate::xet::upload::FileTerms;
    use crate::xet::xorb::{SealedXorb, XorbBuilder};
    use sha2::Digest;
    use xet_core_structures::merklehash::file_hash;
    use xet_core_structures::metadata_shard::chunk_verification::range_hash_from_chunks;
    use xet_core_structures::metadata_shard::streaming_shard::MDBMinimalShard;
    use xet_core_structures::metadata_shard::MDBShardFileHeader;
    use xet_core_structures::xorb_object::{reconstruct_xorb_with_footer, XorbObject};

    /// What the upload session does, without the network: chunks placed (deduped against the
    /// index, new ones into one xorb), the file recorded.
    fn place_file(data: &[u8], index: &mut DedupIndex, open: XorbId, builder: &mut XorbBuilder) -> FileRecord {
        let mut chunker = Chunker::default();
        let mut chunks = chunker.update(data);
        chunks.extend(chunker.finish());
        let mut placed = FileTerms::default();
        let mut list = Vec::new();
        for c in chunks {
            let h = compute_data_hash(&c);
            list.push((h, c.len() as u64));
            let at = match index.lookup(&h, placed.next()) {
                Some(found) => found,
                None => {
                    let at = index.push_chunk(open, h, c.len() as u32);
                    builder.push(h, c.clone());
                    (open, at)
                }
            };
            placed.place(h, c.len() as u32, at);
        }
        FileRecord { file_hash: file_hash(&list), sha256: sha2::Sha256::digest(data).into(), terms: placed.finish() }
    }

    /// A file's bytes put back together from the xorbs, as a CAS reconstruction would.
    fn reassemble(shard: &MDBMinimalShard, file: usize, xorbs: &[(MerkleHash, Vec<u8>)]) -> Vec<u8> {
        let f = shard.file(file).unwrap();
        let mut out = Vec::new();
        for j in 0..f.num_entries() {
            let e = f.entry(j);
            let (_, stored) = xorbs.iter().find(|(h, _)| *h == e.xorb_hash).unwrap();
            let object = XorbObject::deserialize(&mut Cursor::new(stored)).unwrap();
            let (s, end) = object.get_byte_offset(e.chunk_index_start, e.chunk_index_end).unwrap();
            let mut r = &stored[s as usize..end as usize];
            while !r.is_empty() {
                xet_core_structures::xorb_object::deserialize_chunk_to_writer(&mut r, &mut out).unwrap();
            }
        }
        out
    }

    fn store(sealed: &SealedXorb) -> (MerkleHash, Vec<u8>) {
        let mut stored = Vec::new();
        let (_, hash) = reconstruct_xorb_with_footer(&mut stored, &sealed.body).unwrap();
        assert_eq!(hash, sealed.hash);
        (hash, stored)
    }

    #[test]
    fn the_uploaded_shard_is_what_the_cas_checks() {
        // One file repeats a megabyte: its second copy dedups against the xorb being filled.
        let part = pseudo_random(1 << 20, 1);
        let mut data = part.clone();
        data.extend(&part);
        data.extend(pseudo_random(700_000, 2));
        let other = pseudo_random(300_000, 3);

        let mut index = DedupIndex::default();
        let open = index.open_xorb();
        let mut builder = XorbBuilder::default();
        let records = vec![place_file(&data, &mut index, open, &mut builder), place_file(&other, &mut index, open, &mut builder)];
        let sealed = builder.seal().unwrap();
        index.seal(open, sealed.hash);
        let stored = vec![store(&sealed)];
        let shards = build_shards(&records, &index, vec![sealed.info.clone()]).unwrap();
        assert_eq!(shards.len(), 1);
        let full = serialize_for_cache(&shards[0]).unwrap();
        let form = upload_form(&full).unwrap();

        // As uploaded: header with footer_size 0, no footer, and every check of the CAS passes.
        let header = MDBShardFileHeader::deserialize(&mut Cursor::new(&form)).unwrap();
        assert_eq!(header.footer_size, 0);
        assert_eq!(header.version, 2);
        let shard = MDBMinimalShard::from_reader(&mut Cursor::new(&form), true, true).unwrap();
        assert_eq!(shard.num_files(), 2);
        assert_eq!(shard.num_xorb(), 1);
        assert_eq!(shard.xorb(0).unwrap().xorb_hash(), sealed.hash);
        let object = XorbObject::deserialize(&mut Cursor::new(&stored[0].1)).unwrap();
        for (bytes, record) in [(&data, &records[0]), (&other, &records[1])] {
            let i = (0..2).find(|&i| shard.file(i).unwrap().file_hash() == record.file_hash).unwrap();
            let f = shard.file(i).unwrap();
            assert!(f.contains_verification() && f.contains_metadata_ext());
            assert_eq!(f.num_entries(), record.terms.len());
            let mut sizes = Vec::new();
            for j in 0..f.num_entries() {
                let e = f.entry(j);
                let stored_hashes = &object.info.chunk_hashes[e.chunk_index_start as usize..e.chunk_index_end as usize];
                assert_eq!(f.verification(j).range_hash, range_hash_from_chunks(stored_hashes), "term {j}");
                let chunks = object.chunk_hash_sizes(e.chunk_index_start, e.chunk_index_end).unwrap();
                assert_eq!(chunks.iter().map(|(_, s)| s).sum::<u64>(), e.unpacked_segment_bytes as u64);
                sizes.extend(chunks);
            }
            // The file hash is the hash over the chunks of all terms, in order.
            assert_eq!(file_hash(&sizes), f.file_hash());
            assert_eq!(crate::xet::hash_file_bytes_for_tests(bytes), f.file_hash().hex());
            // The SHA-256 reads as the usual hex through Xet's hash string form.
            let sha = hex::encode(sha2::Sha256::digest(bytes));
            assert_eq!(f.metadata_ext().unwrap().sha256.hex(), sha);
            assert_eq!(&reassemble(&shard, i, &stored), bytes);
        }
        assert!(records[0].terms.len() >= 2, "the repeated megabyte points back into the xorb: {:?}", records[0].terms);
        assert!(sealed.info.metadata.num_bytes_in_xorb as usize <= data.len() - (1 << 20) + 140_000 + other.len());

        // As cached: lookup tables and a footer expiring in three weeks.
        let info = MDBShardInfo::load_from_reader(&mut Cursor::new(&full)).unwrap();
        let expiry = info.metadata.shard_key_expiry;
        let now = crate::xet::unix_now();
        assert!(expiry > now + 20 * 24 * 3600 && expiry <= now + 21 * 24 * 3600 + 5, "{expiry}");
        assert!(info.metadata.shard_creation_timestamp >= now - 5);
        assert_eq!(&full[48..info.metadata.file_lookup_offset as usize], &form[48..]);
    }

    #[test]
    fn a_reupload_dedups_from_the_shard_cache() {
        let data = pseudo_random(2_000_000, 4);
        let mut index = DedupIndex::default();
        let open = index.open_xorb();
        let mut builder = XorbBuilder::default();
        let record = place_file(&data, &mut index, open, &mut builder);
        let sealed = builder.seal().unwrap();
        index.seal(open, sealed.hash);
        let shards = build_shards(&[record], &index, vec![sealed.info.clone()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = ShardCache { dir: dir.path().join("shard-cache") };
        cache.save(&serialize_for_cache(&shards[0]).unwrap()).unwrap();
        std::fs::write(dir.path().join("shard-cache/not-a-shard.txt"), b"x").unwrap();

        // A later session: the cache knows every chunk, so nothing is new.
        let mut later = DedupIndex::default();
        cache.load(&mut later, usize::MAX);
        assert_eq!(later.chunk_count(), sealed.info.chunks.len());
        let open = later.open_xorb();
        let mut builder = XorbBuilder::default();
        let again = place_file(&data, &mut later, open, &mut builder);
        assert!(builder.is_empty());
        assert_eq!(again.terms.len(), 1);
        assert_eq!(later.xorbs[again.terms[0].xorb].hash, Some(sealed.hash));
        // With no new xorb, the shard holds the file only.
        let shards = build_shards(&[again], &later, Vec::new()).unwrap();
        let form = upload_form(&serialize_for_cache(&shards[0]).unwrap()).unwrap();
        let shard = MDBMinimalShard::from_reader(&mut Cursor::new(&form), true, true).unwrap();
        assert_eq!((shard.num_files(), shard.num_xorb()), (1, 0));

        // Expired shards are skipped, and deleted a week later.
        let mut expired = MDBInMemoryShard::default();
        expired.add_xorb_block(MDBXorbInfo { metadata: sealed.info.metadata.clone(), chunks: sealed.info.chunks[..1].to_vec() }).unwrap();
        let mut bytes = Vec::new();
        let mut info = MDBShardInfo::serialize_from(&mut bytes, &expired, None).unwrap();
        info.metadata.shard_key_expiry = crate::xet::unix_now() - 8 * 24 * 3600;
        bytes.truncate(bytes.len() - FOOTER_BYTES);
        info.metadata.serialize(&mut bytes).unwrap();
        let old = cache.save(&bytes).unwrap();
        let mut fresh = DedupIndex::default();
        cache.load(&mut fresh, usize::MAX);
        assert_eq!(fresh.chunk_count(), sealed.info.chunks.len(), "only the live shard is indexed");
        assert!(!old.exists());
    }

    #[test]
    fn keyed_dedup_shards_match_only_through_their_key() {
        let data = pseudo_random(500_000, 5);
        let mut index = DedupIndex::default();
        let open = index.open_xorb();
        let mut builder = XorbBuilder::default();
        let record = place_file(&data, &mut index, open, &mut builder);
        let sealed = builder.seal().unwrap();
        index.seal(open, sealed.hash);
        let full = serialize_for_cache(&build_shards(&[record], &index, vec![sealed.info]).unwrap()[0]).unwrap();

        // What a CAS answers on /v1/chunks: the xorb blocks with HMAC-keyed chunk hashes.
        let key = compute_data_hash(b"key");
        let mut keyed = Vec::new();
        MDBShardInfo::export_as_keyed_shard_streaming(
            &mut Cursor::new(&full),
            &mut keyed,
            key,
            Duration::from_secs(3600),
            false,
            false,
            false,
        )
        .unwrap();
        let (info, xorbs) = read_xorbs(&mut Cursor::new(&keyed)).unwrap();
        assert_eq!(info.metadata.chunk_hash_hmac_key, key);
        let raw = compute_data_hash(&data[..1000]);
        assert!(xorbs[0].chunks.iter().all(|c| c.chunk_hash != raw));

        let mut fresh = DedupIndex::default();
        index_shard(&mut fresh, &info, xorbs);
        let open = fresh.open_xorb();
        let mut builder = XorbBuilder::default();
        let again = place_file(&data, &mut fresh, open, &mut builder);
        assert!(builder.is_empty(), "every chunk matched through the key");
        assert_eq!(again.terms.len(), 1);
    }
}
