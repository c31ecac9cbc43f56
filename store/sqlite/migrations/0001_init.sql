-- Conversation state (bot.Store) and transcripts.

CREATE TABLE conversations (
    key     TEXT PRIMARY KEY,
    state   TEXT NOT NULL DEFAULT '',
    vars    TEXT NOT NULL DEFAULT '{}',   -- JSON object
    updated TEXT NOT NULL                 -- RFC 3339, UTC
) WITHOUT ROWID;

CREATE TABLE transcript (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    direction  TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    peer       TEXT NOT NULL,
    text       TEXT NOT NULL,
    time       TEXT NOT NULL,
    answerer   TEXT NOT NULL DEFAULT ''
);

CREATE INDEX transcript_key ON transcript (key, id);
