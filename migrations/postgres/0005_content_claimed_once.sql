-- Identical bytes are one file per sender, claimed in the file's own transaction: two
-- uploads of the same content under different batch ids at the same instant cannot both be
-- accepted (the second waits on the index and is answered DUPLICATE). Refused files are
-- never stored, so a corrected file is never blocked by this.
DROP INDEX remittances_by_content;
CREATE UNIQUE INDEX remittances_content_once ON remittances (sender, content_sha256);
