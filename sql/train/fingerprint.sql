-- Changes whenever the interactions change: part of the model version.
SELECT format('{}-{}-{}', count(*), max(loaded_at), sum(hash(user_id, item_id, ts)) % 1000000007) FROM interactions;
