-- A rating that follows a handoff names the agent and the handoff it rates.

ALTER TABLE ratings ADD COLUMN agent TEXT NOT NULL DEFAULT '';
ALTER TABLE ratings ADD COLUMN handoff_id INTEGER NOT NULL DEFAULT 0;
