-- The suspense queue sorted by amount (largest or smallest first), paged by (amount, id).
CREATE INDEX suspense_open_by_amount ON suspense_items (amount_cents, suspense_id) WHERE state = 'OPEN';
