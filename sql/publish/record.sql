INSERT OR REPLACE INTO published_runs VALUES ($run_date, $path, $users, $rows, $published_at);
