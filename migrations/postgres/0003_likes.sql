-- Who liked which repo; repos.likes keeps the count for listings and sorting.
CREATE TABLE likes (
    user_id    BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    repo_id    TEXT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, repo_id)
);
CREATE INDEX likes_repo ON likes (repo_id);
