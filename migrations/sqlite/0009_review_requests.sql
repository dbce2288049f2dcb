-- Requests to review an order (order-lifecycle.md), as the back office records them: a
-- request within 3 years of the last one (or of the order's start) is accepted only with a
-- reason, and refused ones are not kept (the audit trail has them).
CREATE TABLE review_requests (
    review_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id      TEXT NOT NULL REFERENCES orders (order_id),
    requested_on  TEXT NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('MAIL', 'FAX')),
    reason        TEXT NOT NULL,
    recorded_by   TEXT NOT NULL,
    recorded_at   TEXT NOT NULL
);
CREATE INDEX review_requests_by_order ON review_requests (order_id, requested_on);
