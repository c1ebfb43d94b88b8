-- The input suite's batch, chunk $chunk of $chunks (whole users: by a hash of user_id; $chunks = 1: every row):
-- every interaction ingested so far, time as epoch microseconds (any stored timestamp fits, even one Python
-- or pandas cannot represent). The casts keep the filter a plain integer modulo (a HUGEINT one is 100x slower).
SELECT user_id, item_id, rating, epoch_us(ts) AS ts_us
FROM interactions
WHERE hash(user_id) % CAST($chunks AS UBIGINT) = CAST($chunk AS UBIGINT);
