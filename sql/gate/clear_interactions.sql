-- Canary file: forget the interactions of an earlier night (they are copied afresh).
DELETE FROM interactions;
