-- Every known user, in user_id order.
SELECT DISTINCT user_id FROM interactions ORDER BY user_id;
