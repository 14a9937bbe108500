DROP TABLE IF EXISTS stream_events;
DROP TABLE IF EXISTS viewer_sessions;
DROP TABLE IF EXISTS streams;
