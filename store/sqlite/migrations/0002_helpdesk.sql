-- Helpdesk records: tickets, unmatched questions, ratings.

CREATE TABLE tickets (
    number   INTEGER PRIMARY KEY AUTOINCREMENT,
    key      TEXT NOT NULL,
    peer     TEXT NOT NULL,
    summary  TEXT NOT NULL,
    urgency  TEXT NOT NULL DEFAULT '',
    status   TEXT NOT NULL DEFAULT 'open',
    assignee TEXT NOT NULL DEFAULT '',
    notes    TEXT NOT NULL DEFAULT '',
    created  TEXT NOT NULL,
    updated  TEXT NOT NULL
);

-- Ticket numbers start at 1001: short, but clearly not a count.
INSERT INTO sqlite_sequence (name, seq) VALUES ('tickets', 1000);

CREATE INDEX tickets_key ON tickets (key, number);

CREATE TABLE unmatched (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL,
    session_id TEXT NOT NULL,
    peer       TEXT NOT NULL,
    text       TEXT NOT NULL,
    time       TEXT NOT NULL
);

CREATE TABLE ratings (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL,
    session_id TEXT NOT NULL,
    peer       TEXT NOT NULL,
    score      INTEGER NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    time       TEXT NOT NULL
);
