-- PostgreSQL only (issue 30): samples and the roll-ups are partitioned by UTC day, so that the
-- retention purge drops whole days (`DROP TABLE` of a partition: no dead tuples, no vacuum)
-- instead of deleting a day's rows one by one from a table of a billion.
--
-- * Each table gets day partitions named `<table>_pYYYYMMDD` and a DEFAULT partition that
--   takes any row whose day has no partition yet: a sample is never refused for lack of one.
--   The daemon creates the coming days' partitions ahead of time and moves rows that landed in
--   the default partition into their day's partition (`emod/src/store/partitions.rs`).
-- * `samples` keeps its primary key (session_no, modality, t), now per partition; its index on
--   t becomes a BRIN index (a few kilobytes per day instead of ~20 bytes a sample): rows are
--   appended in time order, so each block range covers a narrow span of t.
-- The SQLite layout stays as `migrations/` leaves it (one table each, DELETE for retention):
-- ARCHITECTURE.md, "Storage".

CREATE FUNCTION emo_day_partitions(parent TEXT, flat TEXT, time_col TEXT) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    d BIGINT;
BEGIN
    FOR d IN EXECUTE format('SELECT DISTINCT %I / 86400000 FROM %I', time_col, flat) LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
            parent || '_p' || to_char(to_timestamp(d * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
            parent, d * 86400000, (d + 1) * 86400000);
    END LOOP;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_default', parent);
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', parent, flat);
    EXECUTE format('DROP TABLE %I', flat);
END $$;

-- The flat tables' index names move out of the way of the partitioned tables' (a primary key's
-- index may carry an older table's name, as tables were rebuilt and renamed before: IF EXISTS).
ALTER TABLE samples RENAME TO samples_flat;
ALTER INDEX IF EXISTS samples_pkey RENAME TO samples_flat_pkey;
ALTER INDEX samples_t RENAME TO samples_flat_t;
CREATE TABLE samples (LIKE samples_flat) PARTITION BY RANGE (t);
ALTER TABLE samples ADD PRIMARY KEY (session_no, modality, t);
-- autosummarize: each block range is summarised (by autovacuum) once it fills; until then a
-- BRIN index must read it whole.
CREATE INDEX samples_t ON samples USING brin (t) WITH (autosummarize = on);
SELECT emo_day_partitions('samples', 'samples_flat', 't');

ALTER TABLE sample_counts_hourly RENAME TO sample_counts_hourly_flat;
ALTER INDEX IF EXISTS sample_counts_hourly_pkey RENAME TO sample_counts_hourly_flat_pkey;
ALTER INDEX sample_counts_hourly_hour RENAME TO sample_counts_hourly_flat_hour;
CREATE TABLE sample_counts_hourly (LIKE sample_counts_hourly_flat) PARTITION BY RANGE (hour);
ALTER TABLE sample_counts_hourly ADD PRIMARY KEY (user_no, hour, modality, emotion);
CREATE INDEX sample_counts_hourly_hour ON sample_counts_hourly (hour);
SELECT emo_day_partitions('sample_counts_hourly', 'sample_counts_hourly_flat', 'hour');

ALTER TABLE sample_counts_minute RENAME TO sample_counts_minute_flat;
ALTER INDEX IF EXISTS sample_counts_minute_pkey RENAME TO sample_counts_minute_flat_pkey;
ALTER INDEX sample_counts_minute_minute RENAME TO sample_counts_minute_flat_minute;
CREATE TABLE sample_counts_minute (LIKE sample_counts_minute_flat) PARTITION BY RANGE (minute);
ALTER TABLE sample_counts_minute ADD PRIMARY KEY (user_no, minute, modality, emotion);
CREATE INDEX sample_counts_minute_minute ON sample_counts_minute (minute);
SELECT emo_day_partitions('sample_counts_minute', 'sample_counts_minute_flat', 'minute');

DROP FUNCTION emo_day_partitions(TEXT, TEXT, TEXT);
