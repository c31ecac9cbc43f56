-- Handoffs to human agents in progress, so that a restarted bot resumes them, and the
-- highest handoff number given, so that numbering continues after a restart.

CREATE TABLE handoffs (
    id        bigint PRIMARY KEY,
    user_key  text NOT NULL,
    user_uri  text NOT NULL,
    verified  boolean NOT NULL DEFAULT false,
    user_name text NOT NULL DEFAULT '',
    reason    text NOT NULL DEFAULT '',
    state     text NOT NULL,
    agent     text NOT NULL DEFAULT '',
    deadline  timestamptz,               -- NULL: none (accepted)
    started   timestamptz NOT NULL,
    tried     text[] NOT NULL DEFAULT '{}',
    pending   text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE handoff_last (
    one integer PRIMARY KEY CHECK (one = 1),
    id  bigint NOT NULL
);
