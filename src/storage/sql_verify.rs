//! The verification SQL both backends run, written once (see `sql_store.rs` for why a macro).
//! Every check is one query that returns the ids breaking it, so a ledger of millions of rows
//! is checked by the database, not loaded into memory.

use sha2::{Digest, Sha256};

/// A conservation check: its name, what it verifies, the rows it covers, and the query
/// listing what breaks it (one text column naming the ids).
pub(super) struct SqlCheck {
    pub name: &'static str,
    pub what: &'static str,
    pub count: &'static str,
    pub breaches: &'static str,
}

pub(super) const CHECKS: [SqlCheck; 12] = [
    // COALESCE(…, FALSE): a comparison with a row that is not there is NULL, and `NOT NULL`
    // would drop the collection from the breaches; a collection neither queued, claimed nor
    // reversed (its money lost) is exactly what this check must name.
    SqlCheck {
        name: "collections_conserved",
        what: "every collection is pending (queued with its amount and date), distributed (claimed by a pool for its amount), \
               or reversed: unclaimed and not queued, or claimed and taken back by entries of exactly its amount",
        count: "SELECT COUNT(*) FROM collections",
        // The queue's key leads with its segment (migrations 0020), which a collection does not
        // know: the queue is read once, and looked up by collection in a transient index
        // (SQLite's automatic index over the materialized rows, a hash on PostgreSQL).
        breaches: "WITH q AS MATERIALIZED (SELECT obligor_id, collection_id, amount_cents, effective_date FROM pending_collections) \
                   SELECT 'collection ' || CAST(c.collection_id AS TEXT) FROM collections c \
                   LEFT JOIN q ON q.collection_id = c.collection_id AND q.obligor_id = c.obligor_id \
                   LEFT JOIN collection_claims k ON k.obligor_id = c.obligor_id AND k.collection_id = c.collection_id \
                   LEFT JOIN (SELECT reversal_of, SUM(amount_cents) AS taken FROM allocations WHERE reversal_of IS NOT NULL GROUP BY reversal_of) r \
                   ON r.reversal_of = c.collection_id \
                   WHERE NOT COALESCE( \
                      (NOT c.reversed AND q.collection_id IS NOT NULL AND k.collection_id IS NULL AND r.taken IS NULL \
                       AND q.amount_cents = c.amount_cents AND q.effective_date = c.effective_date) \
                   OR (NOT c.reversed AND q.collection_id IS NULL AND k.collection_id IS NOT NULL AND k.amount_cents = c.amount_cents \
                       AND r.taken IS NULL) \
                   OR (c.reversed AND q.collection_id IS NULL AND k.collection_id IS NULL AND r.taken IS NULL) \
                   OR (c.reversed AND q.collection_id IS NULL AND k.collection_id IS NOT NULL AND k.amount_cents = c.amount_cents \
                       AND r.taken IS NOT NULL AND r.taken = -c.amount_cents), \
                   FALSE) \
                   ORDER BY c.collection_id",
    },
    SqlCheck {
        name: "claims_and_queue_are_of_collections",
        what: "every queued or claimed collection exists, of the obligor it is filed under, and is queued once",
        count: "SELECT (SELECT COUNT(*) FROM pending_collections) + (SELECT COUNT(*) FROM collection_claims)",
        breaches: "SELECT 'queued collection ' || CAST(q.collection_id AS TEXT) FROM pending_collections q \
                   LEFT JOIN collections c ON c.collection_id = q.collection_id WHERE c.obligor_id IS NULL OR c.obligor_id <> q.obligor_id \
                   UNION ALL \
                   SELECT 'collection queued twice ' || CAST(collection_id AS TEXT) FROM pending_collections \
                   GROUP BY collection_id HAVING COUNT(*) > 1 \
                   UNION ALL \
                   SELECT 'claimed collection ' || CAST(k.collection_id AS TEXT) FROM collection_claims k \
                   LEFT JOIN collections c ON c.collection_id = k.collection_id WHERE c.obligor_id IS NULL OR c.obligor_id <> k.obligor_id",
    },
    // A file's rows are written with their references checked by the file writer in bulk, not
    // by the database row by row (`file_references.rs`; SQLite's foreign keys and PostgreSQL's
    // reference triggers give way to it): these are those references.
    SqlCheck {
        name: "references_in_the_registry",
        what: "every collection's obligor and case, and every remittance line's and termination notice's obligor, are in the \
               registry, and every collection, line and notice of a file is of a file received",
        count: "SELECT (SELECT COUNT(*) FROM collections) + (SELECT COUNT(*) FROM remittance_lines) + (SELECT COUNT(*) FROM termination_notices)",
        breaches: "SELECT 'collection ' || CAST(c.collection_id AS TEXT) FROM collections c \
                   WHERE NOT EXISTS (SELECT 1 FROM obligors o WHERE o.obligor_id = c.obligor_id) \
                   OR (c.case_number IS NOT NULL AND NOT EXISTS (SELECT 1 FROM cases k WHERE k.case_number = c.case_number)) \
                   OR (c.remittance_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM remittances r WHERE r.remittance_id = c.remittance_id)) \
                   UNION ALL \
                   SELECT 'file ' || CAST(l.remittance_id AS TEXT) || ' line ' || CAST(l.line AS TEXT) FROM remittance_lines l \
                   WHERE (l.obligor_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM obligors o WHERE o.obligor_id = l.obligor_id)) \
                   OR NOT EXISTS (SELECT 1 FROM remittances r WHERE r.remittance_id = l.remittance_id) \
                   UNION ALL \
                   SELECT 'termination notice ' || CAST(n.notice_id AS TEXT) FROM termination_notices n \
                   WHERE (n.obligor_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM obligors o WHERE o.obligor_id = n.obligor_id)) \
                   OR NOT EXISTS (SELECT 1 FROM remittances r WHERE r.remittance_id = n.remittance_id)",
    },
    // On SQLite a distribution chunk's rows are written with the foreign keys checked by the
    // chunk itself, against the keys it loaded (`distribution_chunk::LoadedKeys`), not by
    // SQLite row by row: these are those references, each of its own obligor.
    SqlCheck {
        name: "distribution_references",
        what: "every pool is of a run and of an obligor in the registry; every allocation is of a run, and of a pool of its own \
               obligor, and pays (if an order) one of that obligor's orders; every claim is by a pool of the collection's obligor; \
               every order balance is of an order",
        count: "SELECT (SELECT COUNT(*) FROM pools) + (SELECT COUNT(*) FROM allocations) + (SELECT COUNT(*) FROM collection_claims) \
                + (SELECT COUNT(*) FROM order_balances)",
        breaches: "SELECT 'pool ' || CAST(p.pool_id AS TEXT) FROM pools p \
                   WHERE NOT EXISTS (SELECT 1 FROM distribution_runs r WHERE r.run_id = p.run_id) \
                   OR NOT EXISTS (SELECT 1 FROM obligors o WHERE o.obligor_id = p.obligor_id) \
                   UNION ALL \
                   SELECT 'allocation ' || CAST(a.allocation_id AS TEXT) FROM allocations a \
                   LEFT JOIN pools p ON p.pool_id = a.pool_id LEFT JOIN orders o ON o.order_id = a.order_id \
                   WHERE p.obligor_id IS NULL OR p.obligor_id <> a.obligor_id \
                   OR (a.order_id IS NOT NULL AND (o.obligor_id IS NULL OR o.obligor_id <> a.obligor_id)) \
                   OR NOT EXISTS (SELECT 1 FROM distribution_runs r WHERE r.run_id = a.run_id) \
                   UNION ALL \
                   SELECT 'claimed collection ' || CAST(k.collection_id AS TEXT) FROM collection_claims k \
                   LEFT JOIN pools p ON p.pool_id = k.pool_id WHERE p.obligor_id IS NULL OR p.obligor_id <> k.obligor_id \
                   UNION ALL \
                   SELECT 'balance of order ' || b.order_id FROM order_balances b \
                   WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = b.order_id)",
    },
    SqlCheck {
        name: "pools_conserved",
        what: "every pool's collections add up to it, and its rows to it less what reversals took back",
        count: "SELECT COUNT(*) FROM pools",
        breaches: "SELECT 'pool ' || CAST(p.pool_id AS TEXT) FROM pools p \
                   LEFT JOIN (SELECT pool_id, SUM(amount_cents) AS held FROM allocations GROUP BY pool_id) a ON a.pool_id = p.pool_id \
                   LEFT JOIN (SELECT k.pool_id, SUM(k.amount_cents) AS claimed, \
                              SUM(CASE WHEN c.reversed THEN k.amount_cents ELSE 0 END) AS reversed \
                              FROM collection_claims k JOIN collections c ON c.collection_id = k.collection_id \
                              GROUP BY k.pool_id) c ON c.pool_id = p.pool_id \
                   WHERE COALESCE(c.claimed, 0) <> p.amount_cents OR COALESCE(a.held, 0) <> p.amount_cents - COALESCE(c.reversed, 0) \
                   ORDER BY p.pool_id",
    },
    SqlCheck {
        name: "rows_never_overdrawn",
        what: "no row of a pool (an order's month, its arrears, the obligor's credit) holds less than nothing",
        count: "SELECT COUNT(*) FROM allocations",
        breaches: "SELECT 'pool ' || CAST(pool_id AS TEXT) || ' ' || bucket || ' ' || COALESCE(order_id, '') || ' ' || COALESCE(month, '') \
                   FROM allocations GROUP BY pool_id, order_id, bucket, month HAVING SUM(amount_cents) < 0 ORDER BY pool_id",
    },
    SqlCheck {
        name: "current_within_monthly_amount",
        what: "no order's current support for a month is above the highest monthly amount it had (or below zero)",
        count: "SELECT COUNT(*) FROM orders",
        breaches: "SELECT 'order ' || a.order_id || ' ' || a.month FROM allocations a JOIN orders o ON o.order_id = a.order_id \
                   WHERE a.bucket = 'CURRENT' GROUP BY a.order_id, a.month, o.max_monthly_amount_cents \
                   HAVING SUM(a.amount_cents) > o.max_monthly_amount_cents OR SUM(a.amount_cents) < 0 ORDER BY a.order_id, a.month",
    },
    SqlCheck {
        name: "order_balances_match",
        what: "what each order is recorded as paid, by bucket and month (what distribution plans from), is the sum of its allocations",
        count: "SELECT COUNT(*) FROM order_balances",
        breaches: "SELECT RTRIM('order ' || order_id || ' ' || bucket || ' ' || month) FROM ( \
                     SELECT a.order_id, a.bucket, a.month FROM (SELECT order_id, bucket, COALESCE(month, '') AS month, \
                                                                       SUM(amount_cents) AS paid FROM allocations \
                                                                WHERE order_id IS NOT NULL GROUP BY order_id, bucket, COALESCE(month, '')) a \
                     LEFT JOIN order_balances b ON b.order_id = a.order_id AND b.bucket = a.bucket AND b.month = a.month \
                     WHERE b.paid_cents IS NULL OR b.paid_cents <> a.paid \
                     UNION \
                     SELECT b.order_id, b.bucket, b.month FROM order_balances b WHERE b.paid_cents <> 0 AND NOT EXISTS \
                       (SELECT 1 FROM allocations x WHERE x.order_id = b.order_id AND x.bucket = b.bucket AND COALESCE(x.month, '') = b.month) \
                   ) broken ORDER BY order_id, bucket, month",
    },
    SqlCheck {
        name: "runs_add_up",
        what: "every distribution run's pools add up to its recorded total",
        count: "SELECT COUNT(*) FROM distribution_runs",
        breaches: "SELECT 'run ' || CAST(r.run_id AS TEXT) FROM distribution_runs r \
                   LEFT JOIN (SELECT run_id, SUM(amount_cents) AS pooled FROM pools GROUP BY run_id) p ON p.run_id = r.run_id \
                   WHERE r.kind = 'DISTRIBUTION' AND COALESCE(p.pooled, 0) <> r.total_cents ORDER BY r.run_id",
    },
    SqlCheck {
        name: "files_add_up",
        what: "every accepted file's lines add up to its recorded line count, outcomes and total",
        count: "SELECT COUNT(*) FROM remittances",
        breaches: "SELECT 'file ' || r.sender || '/' || r.batch_id FROM remittances r \
                   LEFT JOIN (SELECT remittance_id, COUNT(*) AS lines, \
                              SUM(CASE WHEN status <> 'REJECTED' THEN COALESCE(amount_cents, 0) ELSE 0 END) AS total, \
                              SUM(CASE WHEN status = 'APPLIED' THEN 1 ELSE 0 END) AS applied, \
                              SUM(CASE WHEN status = 'APPLIED_BY_SSN' THEN 1 ELSE 0 END) AS applied_by_ssn, \
                              SUM(CASE WHEN status = 'SUSPENSE' THEN 1 ELSE 0 END) AS suspense, \
                              SUM(CASE WHEN status = 'REJECTED' THEN 1 ELSE 0 END) AS rejected \
                              FROM remittance_lines GROUP BY remittance_id) l ON l.remittance_id = r.remittance_id \
                   WHERE COALESCE(l.lines, 0) <> r.line_count OR COALESCE(l.total, 0) <> r.total_cents \
                   OR COALESCE(l.applied, 0) <> r.applied OR COALESCE(l.applied_by_ssn, 0) <> r.applied_by_ssn \
                   OR COALESCE(l.suspense, 0) <> r.suspense OR COALESCE(l.rejected, 0) <> r.rejected \
                   ORDER BY r.remittance_id",
    },
    SqlCheck {
        name: "one_collection_per_line",
        what: "every applied line with money (and every resolved suspense line) has exactly one collection of its amount; no other line has one",
        count: "SELECT COUNT(*) FROM remittance_lines",
        breaches: "SELECT 'file ' || CAST(l.remittance_id AS TEXT) || ' line ' || CAST(l.line AS TEXT) FROM remittance_lines l \
                   LEFT JOIN (SELECT remittance_id, remittance_line, COUNT(*) AS n, SUM(amount_cents) AS amount FROM collections \
                              WHERE remittance_id IS NOT NULL GROUP BY remittance_id, remittance_line) c \
                   ON c.remittance_id = l.remittance_id AND c.remittance_line = l.line \
                   LEFT JOIN suspense_items s ON s.remittance_id = l.remittance_id AND s.line = l.line \
                   WHERE COALESCE(c.n, 0) <> CASE \
                       WHEN l.status IN ('APPLIED', 'APPLIED_BY_SSN') AND COALESCE(l.amount_cents, 0) > 0 THEN 1 \
                       WHEN l.status = 'SUSPENSE' AND s.state = 'RESOLVED' THEN 1 ELSE 0 END \
                   OR (c.n IS NOT NULL AND c.amount <> l.amount_cents) \
                   ORDER BY l.remittance_id, l.line",
    },
    SqlCheck {
        name: "payments_match_collections",
        what: "every payment has its collection of its amount, reversed exactly when the payment was returned",
        count: "SELECT COUNT(*) FROM payments",
        breaches: "SELECT 'payment ' || CAST(p.payment_id AS TEXT) FROM payments p \
                   LEFT JOIN collections c ON c.collection_id = p.collection_id \
                   WHERE c.collection_id IS NULL OR c.amount_cents <> p.amount_cents \
                   OR (p.return_code IS NULL AND c.reversed) OR (p.return_code IS NOT NULL AND NOT c.reversed) \
                   ORDER BY p.payment_id",
    },
];

/// A table whose rows are never changed: each clean verification seals it, and the next
/// one checks the sealed rows are still exactly as sealed.
pub(super) struct Sealed {
    pub table: &'static str,
    pub check: &'static str,
    pub what: &'static str,
    /// The last id that may be sealed, given the cutoff instant `$1`: rows at or below it
    /// are all committed. Allocations are written under the distribution lock, so their
    /// ids become visible in order; audit rows are not, so only those older than the cutoff
    /// (longer ago than any call may last) are sealed.
    pub stable_through: &'static str,
    /// The rows' text in id order, after `$1`, at most `$2`, through `$3`.
    pub rows: &'static str,
}

pub(super) const SEALED: [Sealed; 2] = [
    Sealed {
        table: "allocations",
        check: "allocations_unchanged",
        what: "the allocation rows sealed by the last verification are exactly as sealed",
        stable_through: "SELECT CAST(COALESCE(MAX(allocation_id), 0) AS BIGINT) FROM allocations WHERE $1 <> ''",
        rows: "SELECT allocation_id, CAST(allocation_id AS TEXT) || '|' || CAST(run_id AS TEXT) || '|' || CAST(pool_id AS TEXT) || '|' || obligor_id \
               || '|' || COALESCE(order_id, '') || '|' || bucket || '|' || COALESCE(month, '') || '|' || effective_date || '|' \
               || CAST(amount_cents AS TEXT) || '|' || COALESCE(CAST(reversal_of AS TEXT), '') || '|' || COALESCE(step, '') || '|' \
               || COALESCE(CAST(end_id AS TEXT), '') || '|' || COALESCE(CAST(credit_id AS TEXT), '') \
               FROM allocations WHERE allocation_id > $1 AND allocation_id <= $3 ORDER BY allocation_id LIMIT $2",
    },
    Sealed {
        table: "audit_log",
        check: "audit_unchanged",
        what: "the audit rows sealed by the last verification are exactly as sealed",
        stable_through: "SELECT CAST(COALESCE(MAX(audit_id), 0) AS BIGINT) FROM audit_log WHERE at < $1",
        rows: "SELECT audit_id, CAST(audit_id AS TEXT) || '|' || at || '|' || request_id || '|' || actor || '|' || COALESCE(key_id, '') || '|' \
               || role || '|' || action || '|' || object || '|' || outcome FROM audit_log \
               WHERE audit_id > $1 AND audit_id <= $3 ORDER BY audit_id LIMIT $2",
    },
];

/// How long ago an audit row must have been written to be sealed: longer than any call
/// lasts (the guard's deadline is 120 s), so no row below it can still commit.
pub(super) const AUDIT_SEAL_DELAY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The cutoff instant for sealing audit rows, in the format the audit trail records.
pub(super) fn audit_cutoff(sealed_at: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(sealed_at) {
        Ok(at) => (at.to_utc() - AUDIT_SEAL_DELAY).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        // An unreadable instant seals no audit row.
        Err(_) => String::new(),
    }
}

/// A running digest of rows in id order: each row's text, then a newline.
pub(super) struct RowDigest {
    hasher: Sha256,
    pub rows: u64,
}

impl RowDigest {
    pub fn new() -> RowDigest {
        RowDigest { hasher: Sha256::new(), rows: 0 }
    }

    pub fn add(&mut self, row: &str) {
        self.hasher.update(row.as_bytes());
        self.hasher.update(b"\n");
        self.rows += 1;
    }

    /// The digest so far, the running state left as it is.
    pub fn hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// Expands the [`VerifyStore`](super::verify::VerifyStore) implementation for one backend.
macro_rules! impl_sql_verify {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::verify::VerifyStore for $store {
            async fn verify_ledger(&self, sealed_at: &str) -> $crate::storage::StoreResult<$crate::storage::verify::VerifyReport> {
                use $crate::storage::sql_verify::{RowDigest, CHECKS, SEALED};
                use $crate::storage::verify::{Check, VerifyReport, BREACHES_LISTED};

                // The checks read one state of the database, while intake goes on.
                let mut tx = self.begin_snapshot().await?;
                let mut checks = Vec::with_capacity(CHECKS.len() + SEALED.len());
                for check in &CHECKS {
                    let (checked,): (i64,) = sqlx::query_as(check.count).fetch_one(&mut *tx).await?;
                    // Streamed: a ledger broken everywhere is counted, not held in memory.
                    let (mut breach_count, mut breaches) = (0u64, Vec::new());
                    {
                        use futures::TryStreamExt;
                        let mut rows = sqlx::query_scalar::<_, String>(check.breaches).fetch(&mut *tx);
                        while let Some(breach) = rows.try_next().await? {
                            breach_count += 1;
                            if breaches.len() < BREACHES_LISTED {
                                breaches.push(breach);
                            }
                        }
                    }
                    checks.push(Check { name: check.name, what: check.what, checked: checked as u64, breach_count, breaches });
                }
                let mut seals = Vec::with_capacity(SEALED.len());
                let cutoff = $crate::storage::sql_verify::audit_cutoff(sealed_at);
                for sealed_table in &SEALED {
                    let table = sealed_table.table;
                    let sealed: Option<(i64, i64, String)> =
                        sqlx::query_as("SELECT through_id, row_count, digest FROM verify_seals WHERE table_name = $1")
                            .bind(table)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let (stable,): (i64,) = sqlx::query_as(sealed_table.stable_through).bind(&cutoff).fetch_one(&mut *tx).await?;
                    // Rows already sealed are read whatever the cutoff now says.
                    let through = stable.max(sealed.as_ref().map_or(0, |s| s.0));
                    let mut digest = RowDigest::new();
                    let mut after = 0i64;
                    let mut breaches = Vec::new();
                    // The digest at the last row that may be sealed.
                    let mut sealable: Option<(i64, u64, String)> = None;
                    let mut seal_checked = sealed.is_none();
                    loop {
                        let rows: Vec<(i64, String)> =
                            sqlx::query_as(sealed_table.rows).bind(after).bind(10_000i64).bind(through).fetch_all(&mut *tx).await?;
                        for (id, text) in &rows {
                            if let Some((sealed_through, count, expected)) = &sealed {
                                if !seal_checked && id > sealed_through {
                                    if digest.rows != *count as u64 || digest.hex() != *expected {
                                        breaches.push(format!("{table} rows 1 to {sealed_through} changed or removed since they were sealed"));
                                    }
                                    seal_checked = true;
                                }
                            }
                            if *id > stable && sealable.is_none() {
                                sealable = Some((after, digest.rows, digest.hex()));
                            }
                            digest.add(text);
                            after = *id;
                        }
                        if rows.is_empty() {
                            break;
                        }
                    }
                    if let Some((sealed_through, count, expected)) = &sealed {
                        if !seal_checked && (digest.rows != *count as u64 || digest.hex() != *expected) {
                            breaches.push(format!("{table} rows 1 to {sealed_through} changed or removed since they were sealed"));
                        }
                    }
                    let sealable = sealable.unwrap_or_else(|| (after, digest.rows, digest.hex()));
                    let unchanged = breaches.is_empty();
                    checks.push(Check {
                        name: sealed_table.check,
                        what: sealed_table.what,
                        checked: digest.rows,
                        breach_count: breaches.len() as u64,
                        breaches,
                    });
                    // A table whose sealed rows are unchanged is sealed as it now stands, whatever
                    // the other checks found; a changed one keeps its seal, so the change stays
                    // visible until repaired.
                    if unchanged {
                        seals.push((table, sealable.0, sealable.1, sealable.2));
                    }
                }
                tx.commit().await?;
                let report = VerifyReport { checks };
                for (table, through, count, digest) in seals {
                    sqlx::query(
                        "INSERT INTO verify_seals (table_name, through_id, row_count, digest, sealed_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (table_name) DO UPDATE SET through_id = excluded.through_id, row_count = excluded.row_count, \
                         digest = excluded.digest, sealed_at = excluded.sealed_at",
                    )
                    .bind(table)
                    .bind(through)
                    .bind(count as i64)
                    .bind(digest)
                    .bind(sealed_at)
                    .execute(self.writer())
                    .await?;
                }
                Ok(report)
            }
        }
    };
}

pub(super) use impl_sql_verify;
