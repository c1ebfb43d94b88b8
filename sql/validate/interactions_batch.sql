-- The input suite's batch: every interaction ingested so far (time as epoch microseconds: any stored
-- timestamp fits, even one Python or pandas cannot represent).
SELECT user_id, item_id, rating, epoch_us(ts) AS ts_us FROM interactions;
