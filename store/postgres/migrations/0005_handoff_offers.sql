-- Offers that move on (handlers.HandoffConfig.OfferTimeout) or go to every free agent at once
-- (HandoffConfig.Broadcast): who holds the offer now, whose offer lapsed, and when the
-- current offer moves on.

ALTER TABLE handoffs ADD COLUMN offered text[] NOT NULL DEFAULT '{}';
ALTER TABLE handoffs ADD COLUMN lapsed text[] NOT NULL DEFAULT '{}';
ALTER TABLE handoffs ADD COLUMN offer_deadline timestamptz;   -- NULL: the offer does not move on
