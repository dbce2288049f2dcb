-- Working the suspense queue (case-registry.md): an OPEN item is resolved to an obligor, which
-- makes it a collection, or returned to its sender with a reason and a reference; once only.
-- Who worked it and when are kept on the item (and in the audit trail).
ALTER TABLE suspense_items ADD COLUMN worked_by TEXT;
ALTER TABLE suspense_items ADD COLUMN worked_at TEXT;
ALTER TABLE suspense_items ADD COLUMN collection_id BIGINT REFERENCES collections (collection_id);
ALTER TABLE suspense_items ADD COLUMN return_reason TEXT;
ALTER TABLE suspense_items ADD COLUMN return_reference TEXT;

-- The queue the back office works: open items, oldest first.
CREATE INDEX suspense_open ON suspense_items (suspense_id) WHERE state = 'OPEN';
