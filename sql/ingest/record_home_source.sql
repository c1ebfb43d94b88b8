-- Record the home's source once (the first load).
INSERT INTO home_source SELECT $kind, $location, $recorded_at WHERE NOT EXISTS (SELECT 1 FROM home_source);
