-- Back to one table each (every row kept), as `migrations/` leaves them.
CREATE TABLE samples_flat (LIKE samples);
INSERT INTO samples_flat SELECT * FROM samples;
DROP TABLE samples;
ALTER TABLE samples_flat RENAME TO samples;
ALTER TABLE samples ADD PRIMARY KEY (session_no, modality, t);
CREATE INDEX samples_t ON samples (t);

CREATE TABLE sample_counts_hourly_flat (LIKE sample_counts_hourly);
INSERT INTO sample_counts_hourly_flat SELECT * FROM sample_counts_hourly;
DROP TABLE sample_counts_hourly;
ALTER TABLE sample_counts_hourly_flat RENAME TO sample_counts_hourly;
ALTER TABLE sample_counts_hourly ADD PRIMARY KEY (user_no, hour, modality, emotion);
CREATE INDEX sample_counts_hourly_hour ON sample_counts_hourly (hour);

CREATE TABLE sample_counts_minute_flat (LIKE sample_counts_minute);
INSERT INTO sample_counts_minute_flat SELECT * FROM sample_counts_minute;
DROP TABLE sample_counts_minute;
ALTER TABLE sample_counts_minute_flat RENAME TO sample_counts_minute;
ALTER TABLE sample_counts_minute ADD PRIMARY KEY (user_no, minute, modality, emotion);
CREATE INDEX sample_counts_minute_minute ON sample_counts_minute (minute);
