DROP INDEX samples_session_t;
