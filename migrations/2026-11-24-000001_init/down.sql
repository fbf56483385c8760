DROP TABLE audit_log;
DROP TABLE sample_counts_minute;
DROP TABLE sample_counts_hourly;
DROP TABLE samples;
DROP TABLE sessions;
DROP TABLE api_tokens;
DROP TABLE users;
