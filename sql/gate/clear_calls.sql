-- Canary file: drop the call ledger of an unfinished earlier canary of this run_date (it never reached the home).
DELETE FROM llm_calls WHERE run_date = $run_date;
