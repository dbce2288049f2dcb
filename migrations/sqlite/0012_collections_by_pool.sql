-- The collections a pool took. Distribution checks each chunk's conservation by summing the
-- collections of the pools it wrote, and reversals and explanations go from a pool to its
-- collections: without this index each of those scanned every collection ever received
-- (quadratic in a large run). Partial: a pending collection has no pool, so receiving money
-- does not pay for it.
CREATE INDEX collections_by_pool ON collections (pool_id) WHERE pool_id IS NOT NULL;
