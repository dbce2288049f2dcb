-- An ACH debit's trace number is the ODFI's 8-digit prefix and a 7-digit sequence: it comes
-- round every 10,000,000 debits, so it cannot be unique forever. It was the payment's
-- collection id (last 7 digits) and UNIQUE: once ten million collections had been received
-- (ten 1,000,000-line files), a new payment could fall on an earlier payment's number and be
-- refused, failing its whole group. A return quotes a trace number within NACHA's return
-- window (60 days at most).
--
-- Now the number comes from a sequence of its own that only payments draw from, so the same
-- number is issued again only 10,000,000 numbers later, far beyond any return window at an
-- agency's rate of payments; it is no longer UNIQUE, and a return names the newest payment
-- that carries it, if the amounts agree
-- (docs/spec-decisions.md, "Trace numbers"). SQLite's twin: sqlite/0019_*.sql.
--
-- The sequence starts after every collection id issued so far: the numbers already given
-- out are at most that id's, so the next ones follow them. (Every collection drew a number
-- until now, so the first 10,000,000 after the upgrade can meet one issued before it sooner
-- than 10,000,000 payments later.) Stop every replica of the previous version before
-- starting the first upgraded one (which runs this migration): they would go on numbering
-- from collection ids, where this sequence starts too.
CREATE SEQUENCE payment_trace_sequence AS BIGINT MINVALUE 0;
SELECT setval('payment_trace_sequence',
              GREATEST(COALESCE((SELECT MAX(collection_id) FROM collections), 0),
                       (SELECT last_value FROM collections_collection_id_seq)) + 1,
              false);

ALTER TABLE payments DROP CONSTRAINT payments_trace_number_key;
-- A return's lookup: the payments with its trace number, newest first.
CREATE INDEX payments_by_trace ON payments (trace_number, payment_id);
