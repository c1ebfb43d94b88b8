-- Canary file: the home's interactions (home_interactions) of the pairs the held-out model may know
-- (known_pairs): every held-out like is left out, so no prompt shows one.
INSERT INTO interactions BY NAME
SELECT h.* FROM home_interactions AS h
SEMI JOIN known_pairs AS k USING (user_id, item_id);
