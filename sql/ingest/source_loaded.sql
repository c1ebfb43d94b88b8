-- Whether a file at this path was loaded before (then probably the same content again: hashed before it is read).
SELECT count(*) > 0 FROM ingested_files WHERE source = $source;
