-- The canary users' interactions, to copy the pairs a held-out model may know into the canary's file
-- (their prompts read no other user's history; copying every interaction would cost minutes at 20M).
SELECT * FROM interactions WHERE user_id IN (SELECT unnest($user_ids));
