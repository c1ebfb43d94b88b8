-- The input suite's batch: every interaction ingested so far.
SELECT user_id, item_id, rating, ts FROM interactions;
