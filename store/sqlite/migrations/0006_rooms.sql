-- Rooms the bot hosts (handlers.Rooms), so that a restarted bot resumes them, and the messages
-- they relay from before they are sent until they were delivered, so that nothing relayed is
-- lost or sent twice across a restart.

CREATE TABLE rooms (
    id            TEXT PRIMARY KEY,
    created       TEXT NOT NULL,
    silent        INTEGER NOT NULL DEFAULT 0,
    leave_on_idle INTEGER NOT NULL DEFAULT 0,
    participants  TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE room_deliveries (
    room      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    text      TEXT NOT NULL,
    time      TEXT NOT NULL,
    answerer  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (room, seq)
);
