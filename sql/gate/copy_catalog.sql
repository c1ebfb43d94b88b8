-- Canary file: the home's catalogue (registered as home_catalog).
INSERT INTO catalog BY NAME SELECT * FROM home_catalog;
