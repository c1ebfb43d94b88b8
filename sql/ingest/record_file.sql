INSERT INTO ingested_files VALUES ($sha256, $source, $rows_read, $rows_loaded, $rows_quarantined, $loaded_at);
