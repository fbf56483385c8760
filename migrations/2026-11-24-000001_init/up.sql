-- EMO schema. One dialect for PostgreSQL and SQLite: ids are app-generated UUID v7 strings and
-- times are Unix epoch milliseconds (BIGINT), so the same SQL, including the time-bucket
-- arithmetic of the dashboards, runs on both backends.
-- Codes: samples.modality 0 face, 1 voice, 2 fused;
--        samples.emotion 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral, 7 calm.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    role          TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

-- Only the SHA-256 of each bearer token is stored.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The daemon that owns the session; on restart it marks its own `running` sessions interrupted.
    node       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('running', 'stopped', 'interrupted')),
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    consent_at BIGINT NOT NULL,
    sources    TEXT NOT NULL,
    label      TEXT,
    summary    TEXT,
    dominant   SMALLINT
);
CREATE INDEX sessions_user_started ON sessions (user_id, started_at);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE INDEX sessions_status ON sessions (status);

-- Per-window expression estimates. The natural key makes replays after an ambiguous failure
-- idempotent (ON CONFLICT DO NOTHING).
CREATE TABLE samples (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    t          BIGINT NOT NULL,
    modality   SMALLINT NOT NULL,
    emotion    SMALLINT NOT NULL,
    confidence REAL NOT NULL,
    p_angry    REAL,
    p_disgust  REAL,
    p_fear     REAL,
    p_happy    REAL,
    p_sad      REAL,
    p_surprise REAL,
    p_neutral  REAL,
    p_calm     REAL,
    PRIMARY KEY (session_id, modality, t)
);
CREATE INDEX samples_user_t ON samples (user_id, t);
CREATE INDEX samples_t ON samples (t);

-- Hourly roll-up maintained in the same transaction as each sample batch: dashboards over
-- millions of samples read this instead of the raw rows.
CREATE TABLE sample_counts_hourly (
    user_id  TEXT NOT NULL,
    hour     BIGINT NOT NULL,
    modality SMALLINT NOT NULL,
    emotion  SMALLINT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (user_id, hour, modality, emotion)
);
CREATE INDEX sample_counts_hourly_hour ON sample_counts_hourly (hour);

-- The same per minute, for minute-bucket timelines and the partial hours at range ends.
CREATE TABLE sample_counts_minute (
    user_id  TEXT NOT NULL,
    minute   BIGINT NOT NULL,
    modality SMALLINT NOT NULL,
    emotion  SMALLINT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (user_id, minute, modality, emotion)
);
CREATE INDEX sample_counts_minute_minute ON sample_counts_minute (minute);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_id    TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_user TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
