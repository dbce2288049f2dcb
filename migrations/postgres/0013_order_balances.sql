-- What each order has been paid, by bucket and month: the sum of its allocations, kept by a
-- trigger as allocations are written (allocations are never changed or deleted, so an
-- insert is the only event). Distribution plans an obligor from these rows instead of
-- summing every allocation its orders ever had, so a run costs what is pending, not the
-- ledger's age. `gateway verify` checks every row against the allocations.

-- No allocation is written between the backfill and the trigger (a replica of the previous
-- version still running would otherwise slip one past both).
LOCK TABLE allocations IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE order_balances (
    -- COLLATE "C" as every id (0001): ranges of order ids compare as on SQLite, and as
    -- `orders` pages them.
    order_id   TEXT COLLATE "C" NOT NULL REFERENCES orders (order_id),
    bucket     TEXT NOT NULL CHECK (bucket IN ('CURRENT', 'ARREARS')),
    -- The month of current support; '' for arrears, which has none (a key holds no NULL).
    month      TEXT NOT NULL,
    paid_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, bucket, month)
);

-- Once per statement, over the rows it wrote: a multi-row insert touches each balance row
-- once, in key order. (Every writer of allocations also holds the distribution lock.)
CREATE FUNCTION allocations_paid_to_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_balances (order_id, bucket, month, paid_cents)
    SELECT order_id, bucket, COALESCE(month, ''), SUM(amount_cents) FROM written
    WHERE order_id IS NOT NULL GROUP BY order_id, bucket, COALESCE(month, '')
    ORDER BY 1, 2, 3
    ON CONFLICT (order_id, bucket, month) DO UPDATE SET paid_cents = order_balances.paid_cents + EXCLUDED.paid_cents;
    RETURN NULL;
END;
$$;
CREATE TRIGGER allocations_paid_to_orders AFTER INSERT ON allocations
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION allocations_paid_to_orders();

INSERT INTO order_balances (order_id, bucket, month, paid_cents)
    SELECT order_id, bucket, COALESCE(month, ''), SUM(amount_cents) FROM allocations
    WHERE order_id IS NOT NULL GROUP BY order_id, bucket, COALESCE(month, '');
