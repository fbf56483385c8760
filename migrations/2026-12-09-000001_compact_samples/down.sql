-- Back to TEXT ids and REAL probabilities (values keep the 1e-4 steps they were stored in).
CREATE TABLE samples_text (
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
INSERT INTO samples_text
SELECT x.id, u.id, s.t, s.modality, s.emotion, CAST(s.confidence AS REAL) / 10000,
       CASE WHEN p_angry < 0 THEN NULL ELSE CAST(p_angry AS REAL) / 10000 END,
       CASE WHEN p_disgust < 0 THEN NULL ELSE CAST(p_disgust AS REAL) / 10000 END,
       CASE WHEN p_fear < 0 THEN NULL ELSE CAST(p_fear AS REAL) / 10000 END,
       CASE WHEN p_happy < 0 THEN NULL ELSE CAST(p_happy AS REAL) / 10000 END,
       CASE WHEN p_sad < 0 THEN NULL ELSE CAST(p_sad AS REAL) / 10000 END,
       CASE WHEN p_surprise < 0 THEN NULL ELSE CAST(p_surprise AS REAL) / 10000 END,
       CASE WHEN p_neutral < 0 THEN NULL ELSE CAST(p_neutral AS REAL) / 10000 END,
       CASE WHEN p_calm < 0 THEN NULL ELSE CAST(p_calm AS REAL) / 10000 END
FROM samples s
JOIN sessions x ON x.no = s.session_no
JOIN users u ON u.no = s.user_no;
DROP TABLE samples;
ALTER TABLE samples_text RENAME TO samples;
CREATE INDEX samples_user_t ON samples (user_id, t);
CREATE INDEX samples_t ON samples (t);
CREATE INDEX samples_session_t ON samples (session_id, t, modality);

CREATE TABLE sample_counts_hourly_text (
    user_id  TEXT NOT NULL,
    hour     BIGINT NOT NULL,
    modality SMALLINT NOT NULL,
    emotion  SMALLINT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (user_id, hour, modality, emotion)
);
INSERT INTO sample_counts_hourly_text
SELECT u.id, c.hour, c.modality, c.emotion, c.n
FROM sample_counts_hourly c JOIN users u ON u.no = c.user_no;
DROP TABLE sample_counts_hourly;
ALTER TABLE sample_counts_hourly_text RENAME TO sample_counts_hourly;
CREATE INDEX sample_counts_hourly_hour ON sample_counts_hourly (hour);

CREATE TABLE sample_counts_minute_text (
    user_id  TEXT NOT NULL,
    minute   BIGINT NOT NULL,
    modality SMALLINT NOT NULL,
    emotion  SMALLINT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (user_id, minute, modality, emotion)
);
INSERT INTO sample_counts_minute_text
SELECT u.id, c.minute, c.modality, c.emotion, c.n
FROM sample_counts_minute c JOIN users u ON u.no = c.user_no;
DROP TABLE sample_counts_minute;
ALTER TABLE sample_counts_minute_text RENAME TO sample_counts_minute;
CREATE INDEX sample_counts_minute_minute ON sample_counts_minute (minute);

DROP INDEX sessions_no;
ALTER TABLE sessions DROP COLUMN no;
DROP INDEX users_no;
ALTER TABLE users DROP COLUMN no;
