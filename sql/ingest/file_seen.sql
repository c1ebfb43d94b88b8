SELECT count(*) > 0 FROM ingested_files WHERE sha256 = $sha256;
