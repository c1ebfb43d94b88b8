INSERT INTO rejected_files VALUES ($sha256, $source, $reason, $rejected_at);
