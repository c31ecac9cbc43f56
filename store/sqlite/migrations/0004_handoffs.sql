-- Handoffs to human agents in progress, so that a restarted bot resumes them, and the
-- highest handoff number given, so that numbering continues after a restart.

CREATE TABLE handoffs (
    id        INTEGER PRIMARY KEY,
    user_key  TEXT NOT NULL,
    user_uri  TEXT NOT NULL,
    verified  INTEGER NOT NULL DEFAULT 0,
    user_name TEXT NOT NULL DEFAULT '',
    reason    TEXT NOT NULL DEFAULT '',
    state     TEXT NOT NULL,
    agent     TEXT NOT NULL DEFAULT '',
    deadline  TEXT NOT NULL DEFAULT '',
    started   TEXT NOT NULL,
    tried     TEXT NOT NULL DEFAULT '[]',
    pending   TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE handoff_last (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    id  INTEGER NOT NULL
);
