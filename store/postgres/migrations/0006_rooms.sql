-- Rooms the bot hosts (handlers.Rooms), so that a restarted bot resumes them, and the messages
-- they relay from before they are sent until they were delivered, so that nothing relayed is
-- lost or sent twice across a restart.

CREATE TABLE rooms (
    id            text PRIMARY KEY,
    created       timestamptz NOT NULL,
    silent        boolean NOT NULL DEFAULT false,
    leave_on_idle boolean NOT NULL DEFAULT false,
    participants  jsonb NOT NULL DEFAULT '[]'
);

CREATE TABLE room_deliveries (
    room      text NOT NULL,
    seq       bigint NOT NULL,
    recipient text NOT NULL,
    text      text NOT NULL,
    time      timestamptz NOT NULL,
    answerer  text NOT NULL DEFAULT '',
    PRIMARY KEY (room, seq)
);
