-- Leases on conversations (store.LeaseStore): the instance that handles a conversation's
-- event holds its lease until it is done, or until the lease ends if it crashed.

CREATE TABLE conversation_leases (
    key   TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until TEXT NOT NULL
);
