-- A session's samples in time order (issue 28, item 5): GET /sessions/{id}/samples pages by
-- (t, modality) after a cursor, which the primary key (session_id, modality, t) cannot serve
-- without sorting the whole session.
CREATE INDEX samples_session_t ON samples (session_id, t, modality);
