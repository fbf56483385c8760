-- Samples lose their foreign key to sessions. The per-row check (a key-share lock on the
-- session row for every sample) was more than half of the ingest time on PostgreSQL. Samples only
-- arrive through the API for a session it has just checked is running, and sessions are deleted
-- only by retention, which now deletes their samples explicitly (what ON DELETE CASCADE did).
-- SQLite cannot drop a constraint, so the table is rebuilt (same columns, key and indexes).
CREATE TABLE samples_new (
    session_id TEXT NOT NULL,
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
INSERT INTO samples_new SELECT * FROM samples;
DROP TABLE samples;
ALTER TABLE samples_new RENAME TO samples;
CREATE INDEX samples_user_t ON samples (user_id, t);
CREATE INDEX samples_t ON samples (t);
