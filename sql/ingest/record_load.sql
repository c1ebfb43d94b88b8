-- The file the rows of this load (interactions.loaded_at) came from.
INSERT INTO interaction_loads VALUES ($loaded_at, $source);
