"""The one settings object: env vars (`RECS_*`, `OPENAI_*`), CLI flags and deployment
parameters all land here."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RankerName = Literal["als", "llm"]
GateMode = Literal["auto", "on", "off"]
SplitName = Literal["random", "ua", "ub"]  # evaluation holdouts: the original 90/10, MovieLens fixed splits
EVAL_LLM_USERS = 100  # users the evaluation's LLM rows are computed on by default (LLM calls cost money)


class Settings(BaseSettings):
    """Every knob of a nightly run, with its default."""

    model_config = SettingsConfigDict(env_prefix="RECS_", extra="ignore")

    # where things live
    home: Path = Field(Path("data"), description="Holds the DuckDB file, models and recommendations/.")
    data: Path | None = Field(
        None, description="MovieLens directory/file or interactions CSV/Parquet; empty: the built-in generated dataset."
    )
    catalog: Path | None = Field(None, description="Catalogue CSV/Parquet for a generic interactions file.")
    run_date: date = Field(default_factory=date.today, description="The night this run is for (partition key).")
    run_date_max_days_ahead: int = Field(
        1, ge=0, description="A run_date later than today plus this many days is refused (a typo must not become the latest night)."
    )

    # built-in dataset
    gen_users: int = Field(1_000, ge=10, description="Users in the generated default dataset.")
    gen_items: int = Field(2_000, ge=20, description="Items in the generated default dataset.")
    gen_ratings: int = Field(100_000, ge=100, description="Ratings in the generated default dataset.")
    gen_seed: int = Field(7, description="Seed of the generated default dataset.")

    # recommendations
    k: int = Field(10, ge=1, le=100, description="Recommendations published per user.")
    n_candidates: int = Field(30, ge=1, le=500, description="ALS candidates per user handed to the ranker.")
    like_threshold: float = Field(3.0, description="A rating above this counts as a like.")
    ranker: RankerName = Field("als", description="Ranking backend: als (offline) or llm.")
    users_per_batch: int | None = Field(
        None, ge=1, description="Users per ranking task (fan-out granularity); empty: 250 for the llm ranker, 10,000 for als.",
    )
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Runs the rank tasks: threads of the flow process, or Dask worker processes."
    )
    dask_address: str | None = Field(
        None, description="Scheduler of an existing Dask cluster (workers need this package installed); empty: a local one."
    )
    dask_workers: int | None = Field(
        None, ge=1, description="Worker processes of the local Dask cluster; empty: Dask's choice (about one per core)."
    )
    dask_threads_per_worker: int | None = Field(
        None, ge=1, description="Threads (rank tasks at once) per local Dask worker; empty: Dask's choice."
    )
    candidate_users_per_batch: int = Field(
        10_000, ge=1, description="Users per candidates task (ALS scores and evidence; fan-out granularity)."
    )
    candidate_batches_in_flight: int = Field(
        2, ge=1, description="Candidates batches handed to the task runner at once: each holds its users' rows of the"
        " matrices and its working arrays (bounds the flow's memory; give a cluster at least its threads).",
    )
    rank_batches_in_flight: int = Field(
        16, ge=1, description="Rank batches handed to the task runner at once (bounds the flow's memory; give a cluster at least its threads)."
    )
    evidence_items: int = Field(3, ge=1, le=10, description="History items cited per explanation at most.")
    evidence_min_share: float = Field(
        0.5, gt=0, le=1, description="A history item is cited only if it contributes at least this share of the strongest one."
    )
    evidence_closeness: float = Field(
        0.8, gt=0, le=1, description="Items contributing within this share of the strongest may lead an explanation (varies a user's list)."
    )

    # ALS and its evaluation
    als_factors: int = Field(16, ge=2, description="Latent factors (tuned on ML-100k validation splits, bench/tune_als.py).")
    als_regularization: float = Field(2.0, ge=0, description="L2 regularization.")
    als_iterations: int = Field(30, ge=1, description="ALS sweeps.")
    als_alpha: float = Field(2.0, gt=0, description="Confidence given to each like.")
    split_seed: int = Field(42, description="Seed of the holdout split.")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="Share of likes held out for evaluation.")
    promote_tolerance: float = Field(
        0.01, ge=0, description="A new model is promoted unless its NDCG@10 is worse than the current one by more."
    )

    # LLM ranker (issue: LLM ranking stage)
    llm_base_url: str | None = Field(
        None, validation_alias=AliasChoices("RECS_LLM_BASE_URL", "OPENAI_BASE_URL"), description="OpenAI-compatible endpoint."
    )
    llm_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RECS_LLM_API_KEY", "OPENAI_API_KEY"), description="API key (never logged)."
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model name.")
    llm_temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    llm_timeout: float = Field(30.0, gt=0, description="Seconds per request before it counts as timed out.")
    llm_rpm: int = Field(60, ge=1, description="Requests per minute at most.")
    llm_tpm: int = Field(200_000, ge=1, description="Tokens per minute at most.")
    llm_concurrency: int = Field(4, ge=1, description="Requests in flight at most.")

    # data checks (issue: great-expectations checks and a gated publish)
    min_timestamp: datetime = Field(
        datetime(1995, 1, 1), description="Interactions timestamped earlier are implausible (input check floor, UTC)."
    )

    # LLM ranker, more (issue 4): prompt, repair, blend, retries
    llm_prompt_version: str = Field("rank_v3", description="Prompt template prompts/<version>.md (goes into every row).")
    llm_candidates_per_call: int | None = Field(None, ge=1, description="Candidates per LLM call; empty: all in one call.")
    llm_history_liked: int = Field(8, ge=0, description="Liked history titles in a prompt at most (evidence, then recent).")
    llm_history_disliked: int = Field(3, ge=0, description="Disliked history titles in a prompt at most (strongest first).")
    llm_explanation_chars: int = Field(200, ge=20, description="Longest explanation accepted (schema maxLength).")
    llm_blend_weight: float = Field(0.5, ge=0, le=1, description="Weight of the LLM position vs the normalised ALS score.")
    llm_liked_first: bool = Field(True, description="Items the LLM likes come before the ones it dislikes.")
    llm_shuffle_seed: int | None = Field(None, description="Shuffle candidates in the prompt with this seed (position bias).")
    llm_arrival_margin_seconds: float = Field(
        1.0, ge=0, description="A request reaches the provider's rate limit within this long after it is sent: its"
        " llm_rpm/llm_tpm window starts then (or at its response, if sooner), not a whole latency later.",
    )
    llm_permutations: int = Field(
        1, ge=1, le=10, description="Candidate orders ranked per user, aggregated by mean position (Borda); each one costs its calls."
    )
    llm_rate_window_seconds: float = Field(60.0, gt=0, description="Window of llm_rpm / llm_tpm (60 s; smaller in tests).")
    llm_deadline_seconds: float = Field(120.0, gt=0, description="Give up on one request (with retries) after this long.")
    llm_backoff_seconds: float = Field(1.0, gt=0, description="First retry delay after a 5xx/timeout; doubles, with jitter.")
    llm_max_users: int | None = Field(
        None, ge=1, description="Uncached users sent to the LLM per run at most, most changed first; the rest keep ALS order."
    )
    llm_shared_limit: Literal["auto", "lease", "rate_limit", "local"] = Field(
        "auto", description="Requests/min limit shared by all workers through the Prefect server: lease (blocks of slots of a"
        " global concurrency limit; the default when PREFECT_API_URL is set) or rate_limit (Prefect's rate limit, one slot per"
        " request: 0.6–0.7 of the budget measured); local: in-process (auto without a server).",
    )
    llm_limit_name: str = Field(
        "recs-llm-rpm", description="Name of the Prefect global limit (created if missing, kept at llm_rpm); every worker using it shares llm_rpm and the mode."
    )
    llm_lease_seconds: float = Field(
        1.0, gt=0, description="lease: a leased block of slots is used within this long, the rest goes unused (each block"
        " is held until its requests' windows pass, so this costs up to its share of llm_rate_window_seconds).",
    )
    llm_lease_poll_seconds: float = Field(
        0.25, gt=0, description="lease: while the limit is full, it is read again after about this long (jittered) before asking for free slots."
    )

    # input contract (issue 12 §1-§4, §6): what ingest accepts, converts, quarantines or refuses
    max_line_bytes: int = Field(1 << 20, ge=1024, description="Input lines longer than this are quarantined ('line too long').")
    max_input_bytes: int = Field(20 << 30, ge=1, description="Input files larger than this are refused before reading.")
    future_tolerance_hours: float = Field(
        24.0, ge=0, description="Interactions later than max(now, end of run_date) plus this are quarantined as future."
    )
    max_quarantined_share: float = Field(
        0.2, ge=0, le=1, description="A file quarantining a larger share of its rows is refused whole (nothing loaded) and the run stops."
    )
    max_title_change_share: float = Field(
        0.5, ge=0, le=1, description="A catalogue renaming a larger share of the known items is refused (another source?)."
    )
    replace_source: bool = Field(
        False, description="A source other than the home's replaces the home's data (published partitions are kept)."
    )

    # DuckDB resources (issue 14): big inputs spill to disk instead of growing the process
    duckdb_memory_limit: str = Field(
        "1GB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$",
        description="DuckDB's memory_limit on every connection of a run (e.g. 1GB, 512MiB); above it, joins, aggregates and sorts spill.",
    )
    duckdb_temp_directory: Path | None = Field(
        None, description="Where DuckDB spills (temp_directory); empty: <home>/duckdb-tmp."
    )
    check_chunk_rows: int = Field(
        2_000_000, ge=1,
        description="Rows great-expectations validates at once (a pandas frame): a check batch is cut into chunks of whole users.",
    )
    check_threads: int = Field(
        2, ge=1, le=64,
        description="Chunks great-expectations validates side by side, one thread and GX context each (memory: this many chunks).",
    )

    # LLM boundary (issue 11 §2-§4): preflight, hard deadlines, size cap, circuit breaker, progress
    llm_preflight_seconds: float = Field(15.0, gt=0, description="Wall-clock bound of the one-call preflight of an llm run.")
    llm_max_answer_bytes: int = Field(262_144, ge=1024, description="Largest answer body read; a bigger one is dropped unread.")
    llm_breaker_failures: int = Field(5, ge=1, description="Consecutive failed attempts (connection, timeout, 5xx) that open the circuit.")
    llm_breaker_cooldown_seconds: float = Field(
        300.0, gt=0, description="An open circuit lets one trial request through this often; a good answer closes it."
    )
    llm_on_outage: Literal["als", "fail"] = Field(
        "als", description="Circuit open: rank the remaining users with ALS (als) or fail the run (fail)."
    )
    progress_seconds: float = Field(10.0, gt=0, description="Seconds between progress lines while ranking.")

    # LLM quality gate (issue 13 §1): the LLM is used only where it beats ALS on held-out likes
    llm_gate: GateMode = Field(
        "auto", description="auto: a nightly canary decides; on: always publish the LLM (canary recorded); off: no canary."
    )
    gate_users: int = Field(200, ge=1, description="Held-out users the nightly canary ranks with the LLM (seeded by split_seed).")

    # nightly report (issue 15 §1)
    llm_price_input: float = Field(0.0, ge=0, description="Price of 1M prompt tokens (the report's LLM cost per night).")
    llm_price_output: float = Field(0.0, ge=0, description="Price of 1M completion tokens (the report's LLM cost per night).")
    report_sample_users: int = Field(500, ge=2, description="Users whose lists are compared pairwise for personalisation (a fixed sample).")
    report_trend_nights: int = Field(7, ge=1, description="Nights in the report's trend (artifact and `recs report`): tonight and the ones before.")

    @model_validator(mode="after")
    def _possible(self) -> Settings:
        """Refuse settings that could only fail after all the work."""
        if self.k > self.n_candidates:
            raise ValueError(f"k ({self.k}) is more than n_candidates ({self.n_candidates}): raise n_candidates or lower k")
        latest = date.today() + timedelta(days=self.run_date_max_days_ahead)
        if not self.min_timestamp.date() <= self.run_date <= latest:
            raise ValueError(
                f"run_date {self.run_date} is outside {self.min_timestamp.date()} .. {latest}"
                " (min_timestamp .. today + run_date_max_days_ahead)"
            )
        return self

    @property
    def db_path(self) -> Path:
        return self.home / "recs.duckdb"

    @property
    def duckdb_spill_dir(self) -> Path:
        return self.duckdb_temp_directory or self.home / "duckdb-tmp"

    @property
    def rank_users_per_batch(self) -> int:
        """Users per rank task: an LLM batch is paid requests, worth resuming in small steps; the als ranker
        only sorts, so its tasks are larger (at 120,000 users the stage's reads and writes took 13.6 s in
        batches of 2,000, 8.5 s in batches of 10,000; the sorting itself 1.6 s)."""
        return self.users_per_batch or (250 if self.ranker == "llm" else 10_000)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def recommendations_dir(self) -> Path:
        return self.home / "recommendations"

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"
