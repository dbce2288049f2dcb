-- Identical bytes are one file per sender, claimed in the file's own transaction: two
-- uploads of the same content under different batch ids at the same instant cannot both be
-- accepted (the second waits on the index and is answered DUPLICATE). Refused files are
-- never stored, so a corrected file is never blocked by this.
--
-- The claim is a column of its own so that a database which already holds duplicates (from
-- before this rule) still migrates: the first file of each content claims it, later copies
-- keep a NULL claim (NULLs never collide in a unique index) and stay as they were.
ALTER TABLE remittances ADD COLUMN content_claim TEXT;
UPDATE remittances SET content_claim = content_sha256
 WHERE remittance_id IN (SELECT MIN(remittance_id) FROM remittances GROUP BY sender, content_sha256);
CREATE UNIQUE INDEX remittances_content_once ON remittances (sender, content_claim);
