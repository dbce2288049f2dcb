-- The withholding order's payment toward arrears per month (case-registry.md,
-- withholding.md): what an employer withholds for arrears each month, capped at the arrears.
-- Optional in the registry file; 0 when absent, so existing orders keep withholding nothing
-- for arrears until the registry says otherwise.
ALTER TABLE orders ADD COLUMN arrears_payment_monthly_cents INTEGER NOT NULL DEFAULT 0
    CHECK (arrears_payment_monthly_cents >= 0);

-- The withholding calculator finds an employee's orders by case number, once per employee of
-- a payroll run.
CREATE INDEX orders_by_case ON orders (case_number);
