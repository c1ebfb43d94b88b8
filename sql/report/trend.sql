-- The report of the $nights latest nights up to $run_date (NULL: the latest ones), newest first.
SELECT run_date, users, coverage, novelty, diversity, personalisation, churn,
       rows_als, rows_llm, rows_als_fallback, rows_popular, llm_cost
FROM report_nights
WHERE run_date <= coalesce($run_date::DATE, DATE '9999-12-31')
ORDER BY run_date DESC
LIMIT $nights;
