-- What `gateway verify` sealed: for each table whose rows are never changed (allocations, the
-- audit trail), the last id it covered, how many rows, and the SHA-256 of those rows in id
-- order. The next verification checks the sealed rows are still exactly as sealed.
CREATE TABLE verify_seals (
    table_name TEXT PRIMARY KEY,
    through_id BIGINT NOT NULL,
    row_count  BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    sealed_at  TEXT NOT NULL
);

-- The highest monthly amount an order ever had: a registry re-import may lower it after
-- months were paid at the old amount, which stay paid; verification checks each month's
-- current support against this.
ALTER TABLE orders ADD COLUMN max_monthly_amount_cents BIGINT NOT NULL DEFAULT 0;
UPDATE orders SET max_monthly_amount_cents = monthly_amount_cents;
