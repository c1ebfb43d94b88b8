-- The home's catalogue, copied into the canary's file.
SELECT * FROM catalog;
