CREATE TABLE streams (
    id                  uuid PRIMARY KEY,
    broadcaster_id      uuid NOT NULL,
    title               text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 255),
    description         text NOT NULL CHECK (char_length(description) <= 2000),
    status              text NOT NULL DEFAULT 'scheduled'
                        CHECK (status IN ('scheduled', 'active', 'ended')),
    region              text NOT NULL,
    tags                text[] NOT NULL DEFAULT '{}',
    thumbnail_url       text,
    rtmp_key            text NOT NULL UNIQUE,
    quality             text NOT NULL DEFAULT '720p',
    fps                 integer NOT NULL DEFAULT 30,
    bitrate_kbps        integer NOT NULL DEFAULT 2500,
    peak_viewers        integer NOT NULL DEFAULT 0,
    final_viewer_count  integer,
    end_reason          text,
    publisher_client_id text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    ended_at            timestamptz,
    CHECK (started_at IS NULL OR started_at >= created_at),
    CHECK (ended_at IS NULL OR ended_at >= created_at)
);
CREATE INDEX streams_active_idx ON streams (created_at) WHERE status = 'active';

CREATE TABLE viewer_sessions (
    id          bigserial PRIMARY KEY,
    stream_id   uuid NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    viewer_id   uuid NOT NULL,
    session_id  uuid NOT NULL UNIQUE,
    instance_id text NOT NULL,
    joined_at   timestamptz NOT NULL,
    left_at     timestamptz
);
CREATE INDEX viewer_sessions_stream_idx ON viewer_sessions (stream_id);

CREATE TABLE stream_events (
    id          bigserial PRIMARY KEY,
    stream_id   uuid NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    event       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX stream_events_stream_idx ON stream_events (stream_id, at);
