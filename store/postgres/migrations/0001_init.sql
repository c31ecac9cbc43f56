-- Conversation state (store.StateStore) and transcripts.

CREATE TABLE conversations (
    key     text PRIMARY KEY,
    state   text NOT NULL DEFAULT '',
    vars    jsonb NOT NULL DEFAULT '{}',
    updated timestamptz NOT NULL
);

CREATE TABLE transcript (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id text NOT NULL,
    key        text NOT NULL,
    direction  text NOT NULL CHECK (direction IN ('in', 'out')),
    peer       text NOT NULL,
    text       text NOT NULL,
    time       timestamptz NOT NULL,
    answerer   text NOT NULL DEFAULT ''
);

-- Transcript reads the last entries of one key in time order.
CREATE INDEX transcript_key ON transcript (key, time, id);
