-- Browser sessions of the web UI (tower-sessions records as JSON).
CREATE TABLE web_sessions (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
