-- Compact sample rows (issue 30). A sample row held two UUIDs as TEXT, REAL probabilities that
-- are mostly NULL-free, and four indexes: about 495 bytes per sample on PostgreSQL, measured.
-- Now:
-- * users and sessions get a small integer key, `no` (unique; assigned by the daemon as
--   MAX(no) + 1 under a lock when the row is inserted), and samples and the roll-ups refer to
--   them instead of to the UUID text;
-- * confidence and the eight probabilities are SMALLINT in units of 1e-4 (0..10000), NOT NULL,
--   with -1 for "no such class" (a face has no `calm`): 2 bytes instead of 4, and no null bitmap;
-- * two indexes: the primary key (session_no, modality, t), which serves every per-session read
--   and the idempotent insert, and one on t for range reads across sessions (export, the raw
--   slivers of the stats). The (user_id, t) and (session_id, t, modality) indexes are gone: a
--   user's rows are found by t and filtered (the roll-ups answer the dashboards), a session's in
--   (t, modality) order by merging its three modalities' key ranges.
-- The column order keeps the primary key's entries at 28 bytes (int4, int2, int8), the width
-- at which PostgreSQL's B-tree splits a page after an ascending run instead of in the middle.
-- Samples whose session or user no longer exists (no foreign key since 2026-11-26) cannot be
-- read through any API and are not carried over.

ALTER TABLE users ADD COLUMN no INTEGER;
UPDATE users SET no = r.rn
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS rn FROM users) r
WHERE r.id = users.id;
CREATE UNIQUE INDEX users_no ON users (no);

ALTER TABLE sessions ADD COLUMN no INTEGER;
UPDATE sessions SET no = r.rn
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM sessions) r
WHERE r.id = sessions.id;
CREATE UNIQUE INDEX sessions_no ON sessions (no);

CREATE TABLE samples_compact (
    t          BIGINT   NOT NULL,
    session_no INTEGER  NOT NULL,
    user_no    INTEGER  NOT NULL,
    modality   SMALLINT NOT NULL,
    emotion    SMALLINT NOT NULL,
    confidence SMALLINT NOT NULL,
    p_angry    SMALLINT NOT NULL,
    p_disgust  SMALLINT NOT NULL,
    p_fear     SMALLINT NOT NULL,
    p_happy    SMALLINT NOT NULL,
    p_sad      SMALLINT NOT NULL,
    p_surprise SMALLINT NOT NULL,
    p_neutral  SMALLINT NOT NULL,
    p_calm     SMALLINT NOT NULL,
    PRIMARY KEY (session_no, modality, t)
);
INSERT INTO samples_compact
SELECT s.t, x.no, u.no, s.modality, s.emotion, CAST(ROUND(s.confidence * 10000) AS SMALLINT),
       COALESCE(CAST(ROUND(p_angry * 10000) AS SMALLINT), -1),
       COALESCE(CAST(ROUND(p_disgust * 10000) AS SMALLINT), -1),
       COALESCE(CAST(ROUND(p_fear * 10000) AS SMALLINT), -1),
       COALESCE(CAST(ROUND(p_happy * 10000) AS SMALLINT), -1),
       COALESCE(CAST(ROUND(p_sad * 10000) AS SMALLINT), -1),
       COALESCE(CAST(ROUND(p_surprise * 10000) AS SMALLINT), -1),
       COALESCE(CAST(ROUND(p_neutral * 10000) AS SMALLINT), -1),
       COALESCE(CAST(ROUND(p_calm * 10000) AS SMALLINT), -1)
FROM samples s
JOIN sessions x ON x.id = s.session_id
JOIN users u ON u.id = s.user_id;
DROP TABLE samples;
ALTER TABLE samples_compact RENAME TO samples;
CREATE INDEX samples_t ON samples (t);

CREATE TABLE sample_counts_hourly_compact (
    user_no  INTEGER  NOT NULL,
    hour     BIGINT   NOT NULL,
    modality SMALLINT NOT NULL,
    emotion  SMALLINT NOT NULL,
    n        BIGINT   NOT NULL,
    PRIMARY KEY (user_no, hour, modality, emotion)
);
INSERT INTO sample_counts_hourly_compact
SELECT u.no, c.hour, c.modality, c.emotion, c.n
FROM sample_counts_hourly c JOIN users u ON u.id = c.user_id;
DROP TABLE sample_counts_hourly;
ALTER TABLE sample_counts_hourly_compact RENAME TO sample_counts_hourly;
CREATE INDEX sample_counts_hourly_hour ON sample_counts_hourly (hour);

CREATE TABLE sample_counts_minute_compact (
    user_no  INTEGER  NOT NULL,
    minute   BIGINT   NOT NULL,
    modality SMALLINT NOT NULL,
    emotion  SMALLINT NOT NULL,
    n        BIGINT   NOT NULL,
    PRIMARY KEY (user_no, minute, modality, emotion)
);
INSERT INTO sample_counts_minute_compact
SELECT u.no, c.minute, c.modality, c.emotion, c.n
FROM sample_counts_minute c JOIN users u ON u.id = c.user_id;
DROP TABLE sample_counts_minute;
ALTER TABLE sample_counts_minute_compact RENAME TO sample_counts_minute;
CREATE INDEX sample_counts_minute_minute ON sample_counts_minute (minute);
