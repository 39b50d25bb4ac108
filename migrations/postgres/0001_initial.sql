-- Users and organisations share one namespace: an account is either kind.
CREATE TABLE accounts (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'org')),
    fullname      TEXT,
    email         TEXT,
    password_hash TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE org_members (
    org_id  BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    role    TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    PRIMARY KEY (org_id, user_id)
);

-- Only the SHA-256 of a token is stored; the token itself is shown once.
CREATE TABLE tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('read', 'write')),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);

-- `id` keys the git repository on disk, so a rename is a metadata change only.
CREATE TABLE repos (
    id            TEXT PRIMARY KEY,
    repo_type     TEXT NOT NULL,
    namespace     TEXT NOT NULL,
    name          TEXT NOT NULL,
    private       BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    last_modified BIGINT NOT NULL,
    sha           TEXT,
    card_data     TEXT,
    tags          TEXT NOT NULL DEFAULT '[]',
    pipeline_tag  TEXT,
    library_name  TEXT,
    downloads     BIGINT NOT NULL DEFAULT 0,
    likes         BIGINT NOT NULL DEFAULT 0,
    UNIQUE (repo_type, namespace, name)
);
CREATE INDEX repos_namespace ON repos (namespace);

CREATE TABLE repo_tags (
    repo_id TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (repo_id, tag)
);
CREATE INDEX repo_tags_tag ON repo_tags (tag);

-- Old names of moved repos answer with a redirect to the current name.
CREATE TABLE repo_redirects (
    repo_type TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    repo_id   TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    PRIMARY KEY (repo_type, namespace, name)
);

-- Parameter counts and tensor count per safetensors LFS object (JSON), read once from its header.
CREATE TABLE safetensors_summaries (
    oid     TEXT PRIMARY KEY,
    summary TEXT NOT NULL
);
