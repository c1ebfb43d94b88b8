-- This run_date's canary table (registered as new_gate_canary): NDCG@10 of every order on the held-out users.
INSERT INTO gate_canary BY NAME SELECT $run_date::DATE AS run_date, * FROM new_gate_canary;
