-- A home from before interaction_loads: its rows stop naming their file (home/move_interaction_sources keeps it per load).
ALTER TABLE interactions DROP COLUMN source;
