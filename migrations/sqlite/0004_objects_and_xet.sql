-- The content each repo may see, by SHA-256 (the oid of git-lfs pointers and `lfsFile` lines).
-- Bytes are stored once; visibility is per repo. Content enters a repo by being uploaded to it,
-- or from a repo the writer can read. `xet_hash` names the Xet file holding the bytes; NULL
-- means the LFS object `lfs/<oid>`.
CREATE TABLE repo_objects (
    repo_id    TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    oid        TEXT NOT NULL,
    size       BIGINT NOT NULL,
    xet_hash   TEXT,
    touched_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, oid)
);
CREATE INDEX repo_objects_oid ON repo_objects (oid);
CREATE INDEX repo_objects_xet ON repo_objects (xet_hash);

-- Stored LFS objects, so that garbage collection can age them.
CREATE TABLE lfs_objects (
    oid        TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One-time jobs and their state (e.g. the backfill of repo_objects from git history).
CREATE TABLE hub_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Xorbs in object storage (`xet/xorbs/<hash>`, the chunks as uploaded, without footer).
-- `chunks`: per chunk its hash (32 bytes), compressed end offset (u32 LE) and unpacked size (u32 LE).
CREATE TABLE xet_xorbs (
    hash          TEXT PRIMARY KEY,
    stored_len    BIGINT NOT NULL,
    unpacked_len  BIGINT NOT NULL,
    num_chunks    BIGINT NOT NULL,
    chunks        BLOB NOT NULL,
    created_at    BIGINT NOT NULL,
    referenced_at BIGINT NOT NULL
);

-- Xet files: how to reassemble a file hash from xorb chunk ranges.
-- `terms`: per term the xorb hash (32 bytes), chunk start, chunk end (exclusive) and unpacked
-- bytes (u32 LE each). `sha256` is set once the hub has hashed the reassembled bytes itself.
CREATE TABLE xet_files (
    file_hash  TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    terms      BLOB NOT NULL,
    sha256     TEXT,
    created_at BIGINT NOT NULL
);

-- Which repo a shard registered a file for, and the SHA-256 the uploader declared for it.
CREATE TABLE xet_file_repos (
    repo_id       TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    file_hash     TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, file_hash)
);
CREATE INDEX xet_file_repos_sha256 ON xet_file_repos (repo_id, sha256);
CREATE INDEX xet_file_repos_file ON xet_file_repos (file_hash);

-- Registered shards (`xet/shards/<id>`), kept to answer global dedup queries.
CREATE TABLE xet_shards (
    id         TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE TABLE xet_shard_xorbs (
    shard_id  TEXT NOT NULL REFERENCES xet_shards(id) ON DELETE CASCADE,
    xorb_hash TEXT NOT NULL,
    PRIMARY KEY (shard_id, xorb_hash)
);
CREATE INDEX xet_shard_xorbs_xorb ON xet_shard_xorbs (xorb_hash);

-- Global dedup: an eligible chunk hash → the shard whose xorbs hold it.
CREATE TABLE xet_dedup (
    chunk_hash TEXT PRIMARY KEY,
    shard_id   TEXT NOT NULL REFERENCES xet_shards(id) ON DELETE CASCADE
);
CREATE INDEX xet_dedup_shard ON xet_dedup (shard_id);
