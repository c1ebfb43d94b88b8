-- The whole schema; every statement is idempotent and runs on each connect.

CREATE TABLE IF NOT EXISTS catalog (
    item_id  BIGINT PRIMARY KEY,
    title    VARCHAR NOT NULL,
    genres   VARCHAR[],
    year     INTEGER,
    source   VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS interactions (
    user_id   BIGINT NOT NULL,
    item_id   BIGINT NOT NULL,
    rating    DOUBLE NOT NULL,
    ts        TIMESTAMP NOT NULL,
    loaded_at TIMESTAMP NOT NULL   -- the load (interaction_loads); unique (user_id, item_id, ts): ingest anti-joins
                                   -- (homes before issue 14 keep a primary key)
);

-- One row per load of an interactions file: the file its rows came from (a column of the load, not of every row:
-- a file path on each of 20M rows cost the ingest ~0.8 s).
CREATE TABLE IF NOT EXISTS interaction_loads (
    loaded_at TIMESTAMP PRIMARY KEY,
    source    VARCHAR NOT NULL
);

-- Rows that could not be used, with where they came from and why.
CREATE TABLE IF NOT EXISTS quarantine (
    source     VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    reason     VARCHAR NOT NULL,
    raw        VARCHAR,
    loaded_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (source, row_number)
);

-- One row per source file loaded, keyed by content so a file loaded twice is a no-op.
CREATE TABLE IF NOT EXISTS ingested_files (
    sha256           VARCHAR PRIMARY KEY,
    source           VARCHAR NOT NULL,
    rows_read        BIGINT NOT NULL,
    rows_loaded      BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    loaded_at        TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS model_runs (
    model_version  VARCHAR PRIMARY KEY,
    run_date       DATE NOT NULL,
    trained_at     TIMESTAMP NOT NULL,
    params         JSON NOT NULL,
    n_users        BIGINT NOT NULL,
    n_items        BIGINT NOT NULL,
    n_likes        BIGINT NOT NULL,
    ndcg_at_10     DOUBLE NOT NULL,
    promoted       BOOLEAN NOT NULL,
    decision       VARCHAR NOT NULL
);

-- Holdout metrics of every trained model and of the popularity baseline on the same split.
CREATE TABLE IF NOT EXISTS model_metrics (
    model_version VARCHAR NOT NULL,
    method        VARCHAR NOT NULL,   -- 'als' | 'popularity'
    metric        VARCHAR NOT NULL,   -- precision | recall | ndcg | map
    k             INTEGER NOT NULL,
    value         DOUBLE NOT NULL,
    PRIMARY KEY (model_version, method, metric, k)
);

CREATE TABLE IF NOT EXISTS candidates (
    run_date          DATE NOT NULL,
    user_id           BIGINT NOT NULL,
    item_id           BIGINT NOT NULL,
    als_rank          INTEGER NOT NULL,
    als_score         DOUBLE NOT NULL,
    source            VARCHAR NOT NULL,   -- 'als' | 'popular'
    evidence_item_ids BIGINT[] NOT NULL,  -- history items contributing most to the ALS score
    model_version     VARCHAR NOT NULL,
    PRIMARY KEY (run_date, user_id, item_id)
);

CREATE TABLE IF NOT EXISTS ranked (
    run_date          DATE NOT NULL,
    user_id           BIGINT NOT NULL,
    rank              INTEGER NOT NULL,
    item_id           BIGINT NOT NULL,
    score             DOUBLE NOT NULL,
    explanation       VARCHAR NOT NULL,
    evidence_item_ids BIGINT[] NOT NULL,
    ranker            VARCHAR NOT NULL,
    model_version     VARCHAR NOT NULL,
    prompt_version    VARCHAR,
    fallback_reason   VARCHAR,
    PRIMARY KEY (run_date, user_id, rank)
);

-- What each stage of each run did: counts, seconds, status (also the resume ledger).
CREATE TABLE IF NOT EXISTS stage_runs (
    run_date  DATE NOT NULL,
    stage     VARCHAR NOT NULL,
    status    VARCHAR NOT NULL,
    seconds   DOUBLE NOT NULL,
    counts    JSON NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_date, stage)
);

-- Partitions published to Parquet (only validated runs get here).
CREATE TABLE IF NOT EXISTS published_runs (
    run_date     DATE PRIMARY KEY,
    path         VARCHAR NOT NULL,
    users        BIGINT NOT NULL,
    rows         BIGINT NOT NULL,
    published_at TIMESTAMP NOT NULL
);

-- Every check of every validation attempt (expectations/<suite>.json): GX expectations and SQL checks.
CREATE TABLE IF NOT EXISTS validation_runs (
    run_date         DATE NOT NULL,
    suite            VARCHAR NOT NULL,
    expectation      VARCHAR NOT NULL,   -- the check's name in the suite file
    kind             VARCHAR NOT NULL,   -- GX expectation type, or the sql/ file of an SQL check
    severity         VARCHAR NOT NULL,   -- critical | warning | info
    success          BOOLEAN NOT NULL,
    observed_value   JSON,
    unexpected_count BIGINT,
    validated_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (run_date, suite, expectation, validated_at)
);

-- LLM ranker (issue 4): answers paid for once, keyed by sha256 of (model, prompt version, messages, parameters).
CREATE TABLE IF NOT EXISTS llm_cache (
    request_key       VARCHAR PRIMARY KEY,
    model             VARCHAR NOT NULL,
    prompt_version    VARCHAR NOT NULL,
    response_format   VARCHAR NOT NULL,   -- json_schema | json_object | text: what the server accepted
    content           VARCHAR,            -- the message content as received (NULL for a refusal)
    refusal           VARCHAR,
    finish_reason     VARCHAR,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    created_at        TIMESTAMP NOT NULL
);

-- Every LLM request attempt (and cache hit) of a run: the accounting ledger.
CREATE TABLE IF NOT EXISTS llm_calls (
    run_date          DATE NOT NULL,
    user_id           BIGINT NOT NULL,
    request_key       VARCHAR NOT NULL,
    attempt           INTEGER NOT NULL,   -- 0 = first try of this request
    response_format   VARCHAR NOT NULL,
    outcome           VARCHAR NOT NULL,   -- ok | cache_hit | rate_limited | server_error | timeout | format_rejected | error
    http_status       INTEGER,
    latency_ms        DOUBLE,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    recorded_at       TIMESTAMP NOT NULL
);

-- How each user of a run came out of the LLM ranker: repairs, fallbacks, prompt size.
CREATE TABLE IF NOT EXISTS llm_users (
    run_date              DATE NOT NULL,
    user_id               BIGINT NOT NULL,
    ranker                VARCHAR NOT NULL,   -- llm | als_fallback
    fallback_reason       VARCHAR,
    hallucinated_ids      INTEGER NOT NULL,
    duplicate_ids         INTEGER NOT NULL,
    missing_ids           INTEGER NOT NULL,
    stripped_citations    INTEGER NOT NULL,
    explanation_fallbacks INTEGER NOT NULL,
    repair_retries        INTEGER NOT NULL,
    prompt_tokens_est     BIGINT NOT NULL,    -- chars/4 of what this ranker sends
    recipe_tokens_est     BIGINT NOT NULL,    -- chars/4 of the original recipe (300 titles, 3 calls of 10)
    recorded_at           TIMESTAMP NOT NULL,
    PRIMARY KEY (run_date, user_id)
);

-- The per-run LLM cap (llm_max_users): which users of a run_date may be sent to the LLM;
-- built once per run_date (and settings), so a resumed run keeps the same choice.
CREATE TABLE IF NOT EXISTS llm_plan (
    run_date        DATE NOT NULL,
    user_id         BIGINT NOT NULL,
    cached          BOOLEAN NOT NULL,   -- every request of the user's prompt already answered: costs nothing
    last_llm_date   DATE,               -- last earlier run_date the user was ranked by the LLM (NULL: new)
    new_candidates  INTEGER NOT NULL,   -- candidates not among that run's candidates (all when new)
    priority        INTEGER,            -- 1 = sent first, among the uncached users
    admitted        BOOLEAN NOT NULL,   -- cached, or within the cap
    max_users       INTEGER NOT NULL,
    model           VARCHAR NOT NULL,
    prompt_version  VARCHAR NOT NULL,
    PRIMARY KEY (run_date, user_id)
);

-- LLM quality gate (issue 13 §1): each night's canary, NDCG@10 of every order on held-out likes ...
CREATE TABLE IF NOT EXISTS gate_canary (
    run_date     DATE NOT NULL,
    method       VARCHAR NOT NULL,   -- 'als' | 'blend' (LLM position weighted by blend_weight; 1 = LLM order)
    blend_weight DOUBLE NOT NULL,    -- -1 for 'als'
    users        INTEGER NOT NULL,
    ndcg_at_10   DOUBLE NOT NULL,
    mean_diff    DOUBLE NOT NULL,    -- mean paired difference to ALS
    PRIMARY KEY (run_date, method, blend_weight)
);

-- ... and its decision: a rerun of the night reuses it (no canary calls).
CREATE TABLE IF NOT EXISTS gate_runs (
    run_date       DATE PRIMARY KEY,
    open           BOOLEAN NOT NULL,   -- the rule: best blend beats ALS with confidence
    chosen_weight  DOUBLE NOT NULL,
    als_ndcg       DOUBLE NOT NULL,
    best_ndcg      DOUBLE NOT NULL,
    lower_bound    DOUBLE NOT NULL,    -- 5th percentile of the bootstrap means of (best - ALS)
    users          INTEGER NOT NULL,
    llm_users      INTEGER NOT NULL,   -- canary users the LLM ranked (the others fell back to ALS)
    sent_users     INTEGER NOT NULL,   -- canary users with uncached calls (counted against llm_max_users)
    model          VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    decided_at     TIMESTAMP NOT NULL
);

-- Input contract (issue 12 §2, §6): files refused whole (nothing of them loaded) with the reason;
-- loaded rows that were converted (e.g. millisecond epochs), counted per note; the source a home is built from.
CREATE TABLE IF NOT EXISTS rejected_files (
    sha256      VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    rejected_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS ingest_notes (
    sha256     VARCHAR NOT NULL,
    source     VARCHAR NOT NULL,
    note       VARCHAR NOT NULL,
    rows       BIGINT NOT NULL,
    first_line BIGINT NOT NULL,
    loaded_at  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS home_source (
    kind        VARCHAR NOT NULL,   -- generated | files
    location    VARCHAR NOT NULL,   -- generated-<params>, or the resolved directory holding the data
    recorded_at TIMESTAMP NOT NULL
);

-- Issue 12 §3/§7 (model branch): one definition of a like and of a display title. TEMP macros
-- live in each connection (no catalogue writes, so concurrent connections never conflict, and a
-- changed definition applies to existing homes at once).
-- The latest rating of every (user, item) pair; liked = that latest rating is above $threshold.
-- `ratings` names another table or registered frame with the same columns (user_id, item_id, rating, ts).
CREATE OR REPLACE TEMP MACRO latest_ratings(threshold, ratings := 'interactions') AS TABLE
SELECT user_id, item_id, arg_max(rating, ts) AS rating, max(ts) AS ts, arg_max(rating, ts) > threshold AS liked
FROM query_table(ratings)
GROUP BY user_id, item_id;

-- Stored interactions with the file each came from (its load's row in interaction_loads), for checks quoting rows.
-- DuckDB pushes a caller's filters and joins on interactions below this join.
CREATE OR REPLACE TEMP MACRO interactions_with_source() AS TABLE
SELECT i.* EXCLUDE (loaded_at), l.source
FROM interactions AS i
LEFT JOIN interaction_loads AS l USING (loaded_at);

-- The (user, item) pairs a user likes.
CREATE OR REPLACE TEMP MACRO likes(threshold, ratings := 'interactions') AS TABLE
SELECT user_id, item_id FROM latest_ratings(threshold, ratings := ratings) WHERE liked;

-- A field's text as ingest judges it: without surrounding blanks and double quotes, NULL when nothing is left.
CREATE OR REPLACE TEMP MACRO field_text(text) AS nullif(trim(text, ' "'), '');

-- A field holding plain decimal digits (optional '-'), as DuckDB prints a BIGINT: the common case, which skips the
-- slower trimming and pattern checks below.
CREATE OR REPLACE TEMP MACRO plain_integer(text) AS TRY_CAST(text AS BIGINT)::VARCHAR = text;

-- An id written as an integer (after field_text; '+'/'-' sign and leading zeros allowed) as BIGINT, else NULL:
-- '61.5', '1.0', '1e2', '0x10', '1_000' are not integers (TRY_CAST alone would round or convert them).
CREATE OR REPLACE TEMP MACRO integer_text(text) AS
CASE
    WHEN plain_integer(text) THEN TRY_CAST(text AS BIGINT)
    WHEN regexp_full_match(field_text(text), '[+-]?\d+') THEN TRY_CAST(field_text(text) AS BIGINT)
END;

-- A catalogue title as explanations and prompts show it: at most 80 characters, an ellipsis when cut.
CREATE OR REPLACE TEMP MACRO display_title(title) AS
CASE WHEN length(title) > 80 THEN rtrim(left(title, 79)) || '…' ELSE title END;

-- Issue 15 §1: beyond-accuracy figures of each published night (one row per run_date, replaced on rerun).
CREATE TABLE IF NOT EXISTS report_nights (
    run_date              DATE PRIMARY KEY,
    previous_run_date     DATE,               -- the published night churn is measured against
    users                 BIGINT NOT NULL,
    rows                  BIGINT NOT NULL,
    catalog_items         BIGINT NOT NULL,
    coverage              DOUBLE NOT NULL,    -- distinct recommended items / catalogue items
    novelty               DOUBLE,             -- mean popularity rank (1 = most liked) of recommended items
    diversity             DOUBLE,             -- 1 - mean pairwise genre Jaccard within a list, averaged over users
    personalisation       DOUBLE,             -- 1 - mean pairwise cosine overlap of users' lists (sampled users)
    churn                 DOUBLE,             -- share of a user's list not in the previous night's list, averaged
    rows_als              BIGINT NOT NULL,
    rows_llm              BIGINT NOT NULL,
    rows_als_fallback     BIGINT NOT NULL,
    rows_popular          BIGINT NOT NULL,
    llm_prompt_tokens     BIGINT NOT NULL,    -- paid requests only (cache hits cost nothing)
    llm_completion_tokens BIGINT NOT NULL,
    llm_cost              DOUBLE NOT NULL,    -- tokens x llm_price_input/llm_price_output per 1M tokens
    reported_at           TIMESTAMP NOT NULL
);
