-- What each order has been paid, by bucket and month: the sum of its allocations, kept by a
-- trigger as each allocation is written (allocations are never changed or deleted, so an
-- insert is the only event). Distribution plans an obligor from these rows instead of
-- summing every allocation its orders ever had, so a run costs what is pending, not the
-- ledger's age. `gateway verify` checks every row against the allocations.
CREATE TABLE order_balances (
    order_id   TEXT NOT NULL REFERENCES orders (order_id),
    bucket     TEXT NOT NULL CHECK (bucket IN ('CURRENT', 'ARREARS')),
    -- The month of current support; '' for arrears, which has none (a key holds no NULL).
    month      TEXT NOT NULL,
    paid_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, bucket, month)
) WITHOUT ROWID;

INSERT INTO order_balances (order_id, bucket, month, paid_cents)
    SELECT order_id, bucket, COALESCE(month, ''), SUM(amount_cents) FROM allocations
    WHERE order_id IS NOT NULL GROUP BY order_id, bucket, COALESCE(month, '');

CREATE TRIGGER allocations_paid_to_orders AFTER INSERT ON allocations
WHEN NEW.order_id IS NOT NULL
BEGIN
    INSERT INTO order_balances (order_id, bucket, month, paid_cents)
    VALUES (NEW.order_id, NEW.bucket, COALESCE(NEW.month, ''), NEW.amount_cents)
    ON CONFLICT (order_id, bucket, month) DO UPDATE SET paid_cents = paid_cents + excluded.paid_cents;
END;
