CREATE TABLE samples_old (
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
INSERT INTO samples_old SELECT * FROM samples WHERE session_id IN (SELECT id FROM sessions);
DROP TABLE samples;
ALTER TABLE samples_old RENAME TO samples;
CREATE INDEX samples_user_t ON samples (user_id, t);
CREATE INDEX samples_t ON samples (t);
