-- A rating that follows a handoff names the agent and the handoff it rates.

ALTER TABLE ratings ADD COLUMN agent text NOT NULL DEFAULT '';
ALTER TABLE ratings ADD COLUMN handoff_id bigint NOT NULL DEFAULT 0;
