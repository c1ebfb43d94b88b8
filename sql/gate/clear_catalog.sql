-- Canary file: forget the catalogue of an earlier night (it is copied afresh).
DELETE FROM catalog;
