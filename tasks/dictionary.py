"""The data dictionary: the one description of every published Parquet column and every DuckDB
table and view of a home (with the columns analysts read).

It lands in three places: the Parquet file's key-value metadata (`recs.description`,
`recs.column.<name>`, at publish), `COMMENT ON` the tables, views and columns of the DuckDB file
(`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()` show them), and the README's data
dictionary, which `python -m tasks.dictionary` rewrites between its markers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tasks import db

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- data-dictionary:start (python -m tasks.dictionary) -->", "<!-- data-dictionary:end -->"

# Columns that mean the same wherever they appear (tables, views, the Parquet file).
SHARED: dict[str, str] = {
    "run_date": "The night the row belongs to (partition key; in the Parquet file it is the run_date=YYYY-MM-DD directory).",
    "user_id": "User id of the source data.",
    "item_id": "Item id of the source data (catalogue key).",
    "rank": "Position in the user's list, 1 = first.",
    "title": "Catalogue title of the item.",
    "genres": "Catalogue genres of the item.",
    "score": "Ranking score: the ALS score, or the blend of LLM position and normalised ALS score for the llm ranker.",
    "explanation": "Why the item is recommended, naming liked history items (computed, or the LLM's sentence when it cites them).",
    "evidence_item_ids": "History items the user liked that contributed most to the recommendation (the explanation cites them).",
    "ranker": "Who ordered the list: als, llm, or als_fallback (the LLM was not used or failed for this user).",
    "model_version": "ALS model that produced the candidates (hash of run_date, data fingerprint and parameters).",
    "prompt_version": "Prompt template of the llm ranker (prompts/VERSION.md); empty for the als ranker.",
    "fallback_reason": "Why an llm-ranked user fell back to the ALS order; empty otherwise.",
}


@dataclass(frozen=True)
class Entry:
    kind: str  # TABLE | VIEW
    description: str
    columns: dict[str, str] = field(default_factory=dict)  # columns whose meaning is particular to this object


PARQUET_DESCRIPTION = "Top K explained recommendations per user of one published night (explained-recs)."
PARQUET_COLUMNS = (
    "user_id", "rank", "item_id", "title", "score", "explanation", "evidence_item_ids", "ranker", "model_version", "prompt_version",
)  # fmt: skip

OBJECTS: dict[str, Entry] = {
    # analyst views (sql/views.sql)
    "latest_recommendations": Entry("VIEW", "The newest published night, one row per user and rank, with titles and genres."),
    "published_recommendations": Entry("VIEW", "Every published night, one row per user and rank (the rows of the Parquet files)."),
    "quarantine_summary": Entry(
        "VIEW",
        "Quarantined input rows per source and reason.",
        {"source": "Input file the rows came from.", "reason": "Why the rows could not be used.",
         "rows": "Rows quarantined for this reason.", "first_row": "Line number of the first such row."},
    ),  # fmt: skip
    "model_comparison": Entry(
        "VIEW",
        "Holdout metrics of every trained model next to the popularity baseline on the same split.",
        {"promoted": "The model went on serving.", "metric": "precision | recall | ndcg | map.", "k": "Cutoff of the metric.",
         "als": "Value of the ALS model.", "popularity": "Value of the popularity baseline."},
    ),  # fmt: skip
    "explanation_quality": Entry(
        "VIEW",
        "Explanation quality per night: how varied the texts are, how many history items they cite, how faithful LLM citations are.",
        {"rows": "Ranked rows of the night.",
         "distinct_explanation_share": "Distinct explanation texts / rows.",
         "evidence_items_per_user": "Distinct history items cited across a user's list, averaged over users whose lists cite any.",
         "llm_citations": "History items cited by LLM-ranked rows.",
         "llm_faithfulness": "Share of LLM-cited items that are among the ALS top contributors of that item; empty without LLM rows."},
    ),  # fmt: skip
    "gate_drift": Entry(
        "VIEW",
        "The LLM gate night by night: ALS vs LLM order vs the chosen blend on the canary's held-out likes (a drifting model shows here).",
        {"open": "The gate opened: the chosen blend beat ALS with confidence.",
         "chosen_weight": "Blend weight on the LLM position the gate chose (ties: the smaller).",
         "users": "Held-out users the canary ranked.",
         "als_ndcg": "NDCG@10 of ALS order on the canary users.",
         "llm_ndcg": "NDCG@10 of the LLM order (blend weight 1) on the canary users.",
         "chosen_ndcg": "NDCG@10 of the chosen blend on the canary users.",
         "lower_bound": "5th percentile of the paired-bootstrap means of (chosen - ALS); the gate needs it >= 0.",
         "model": "Chat model the canary used.", "prompt_version": "Prompt the canary used."},
    ),  # fmt: skip
    # tables (sql/schema.sql)
    "gate_canary": Entry(
        "TABLE",
        "Each llm night's canary: NDCG@10 on held-out likes of ALS order and of the LLM blend at each weight.",
        {"method": "als, or blend (the llm ranker's blend of LLM position and ALS score).",
         "blend_weight": "Weight on the LLM position (1 = LLM order); -1 for als.",
         "users": "Held-out users the canary ranked.",
         "ndcg_at_10": "Mean NDCG@10 on the held-out likes.",
         "mean_diff": "Mean paired difference to ALS order."},
    ),  # fmt: skip
    "gate_runs": Entry(
        "TABLE",
        "Each llm night's gate decision (a rerun of the night reuses it): whether the LLM beat ALS, at which weight, and why.",
        {"open": "The best blend's mean gain over ALS is positive and its bootstrap lower bound >= 0.",
         "chosen_weight": "Best blend weight (ties: the smaller); tonight's weight when open.",
         "als_ndcg": "NDCG@10 of ALS order on the canary users.",
         "best_ndcg": "NDCG@10 of the best blend on the canary users.",
         "lower_bound": "5th percentile of 1,000 paired-bootstrap means of (best - ALS).",
         "users": "Held-out users the canary ranked.",
         "llm_users": "Canary users the LLM ranked (the others fell back to ALS order).",
         "sent_users": "Canary users with paid calls (counted against llm_max_users).",
         "model": "Chat model.", "prompt_version": "Prompt template.",
         "reason": "The decision in words (also in the log and the run artifacts).",
         "decided_at": "When the gate decided (UTC)."},
    ),  # fmt: skip
    "catalog": Entry("TABLE", "Items of the source: title, genres, year, and the file they came from."),
    "interactions": Entry("TABLE", "Every rating loaded: user, item, rating, timestamp, and the load it came with (loaded_at)."),
    "interaction_loads": Entry("TABLE", "One row per load of an interactions file: when (loaded_at, as on its rows) and the file."),
    "quarantine": Entry("TABLE", "Input rows that could not be used, with where they came from and why."),
    "ingested_files": Entry("TABLE", "One row per source file loaded, keyed by content (a file loaded twice is a no-op)."),
    "rejected_files": Entry("TABLE", "Files refused whole (nothing of them loaded), with the reason."),
    "ingest_notes": Entry("TABLE", "Loaded rows that were converted (e.g. millisecond epochs), counted per note."),
    "home_source": Entry("TABLE", "The source this home is built from (one source per home)."),
    "validation_runs": Entry("TABLE", "Every check of every validation attempt (GX expectations and SQL checks) and its outcome."),
    "model_runs": Entry("TABLE", "Every trained ALS model: parameters, sizes, holdout NDCG@10, promotion decision."),
    "model_metrics": Entry("TABLE", "Holdout metrics of every trained model and of the popularity baseline on the same split."),
    "candidates": Entry("TABLE", "Up to N unseen items per user and night with ALS score and evidence items (ALS, or popular for cold users)."),
    "ranked": Entry("TABLE", "The ranked, explained top K per user and night (published nights are in published_runs)."),
    "stage_runs": Entry("TABLE", "What each stage of each run did: counts, seconds, status."),
    "published_runs": Entry("TABLE", "Nights published to Parquet (only validated runs): path, users, rows."),
    "llm_cache": Entry("TABLE", "LLM answers paid for once, keyed by a hash of model, prompt version, messages and parameters."),
    "llm_calls": Entry("TABLE", "Every LLM request attempt and cache hit of a run, with tokens and latency: the accounting ledger."),
    "llm_users": Entry("TABLE", "How each user of a run came out of the LLM ranker: repairs, fallbacks, prompt size."),
    "llm_plan": Entry("TABLE", "Which users of a night may be sent to the LLM under llm_max_users (kept for a resumed run)."),
    "report_nights": Entry(
        "TABLE",
        "Beyond-accuracy figures of each published night (one row per run_date): the nightly report.",
        {
            "previous_run_date": "The published night churn is measured against (empty for the first night).",
            "users": "Users with a published list.",
            "rows": "Rows published.",
            "catalog_items": "Items in the catalogue.",
            "coverage": "Distinct recommended items / catalogue items.",
            "novelty": "Mean popularity rank (1 = most liked item) of the recommended items; higher is more novel.",
            "diversity": "1 - mean pairwise Jaccard similarity of the genres within a user's list, averaged over users.",
            "personalisation": "1 - mean pairwise cosine overlap of users' lists (report_sample_users users).",
            "churn": "Share of a user's list not in their list of the previous published night, averaged over users in both.",
            "rows_als": "Rows ordered by ALS (als ranker).",
            "rows_llm": "Rows ordered by the LLM.",
            "rows_als_fallback": "Rows of llm-run users that got the ALS order (over the cap, or the LLM failed).",
            "rows_popular": "Rows from the popularity fallback (users ALS cannot serve).",
            "llm_prompt_tokens": "Prompt tokens of paid LLM requests (cache hits cost nothing).",
            "llm_completion_tokens": "Completion tokens of paid LLM requests.",
            "llm_cost": "LLM cost of the night: tokens x llm_price_input / llm_price_output per 1M tokens.",
            "reported_at": "When the figures were computed (UTC).",
        },
    ),
}


def column_description(obj: str, column: str) -> str | None:
    """The description of `obj.column`: the object's own, else the shared one."""
    return OBJECTS[obj].columns.get(column) or SHARED.get(column)


def parquet_metadata() -> dict[bytes, bytes]:
    """Key-value metadata of a published Parquet file."""
    pairs = {"recs.description": PARQUET_DESCRIPTION} | {f"recs.column.{name}": SHARED[name] for name in PARQUET_COLUMNS}
    return {key.encode(): value.encode() for key, value in pairs.items()}


def comment_home(con) -> None:
    """`COMMENT ON` every table, view and described column of the home that exists.

    COMMENT ON takes no bound parameters, so sql/dictionary/comment_statements.sql builds the statements,
    quoting names and text, from the entries of this module only (never from input)."""
    entries = [(name, entry.kind, None, entry.description) for name, entry in OBJECTS.items()]
    entries += [(name, entry.kind, column, text) for name, entry in OBJECTS.items() for column, text in entry.columns.items()]
    entries += [(name, entry.kind, column, text) for name, entry in OBJECTS.items() for column, text in SHARED.items()
                if column not in entry.columns]  # fmt: skip
    frame = pl.DataFrame(entries, schema=["object", "kind", "column_name", "description"], orient="row")
    with db.registered(con, "dictionary_entries", frame):
        statements = db.run(con, "dictionary/comment_statements")
    for (statement,) in statements:
        con.execute(statement)


def markdown() -> str:
    """The README's data dictionary."""
    parquet = "\n".join(f"| `{name}` | {SHARED[name]} |" for name in ("run_date", *PARQUET_COLUMNS))
    objects = "\n".join(f"| `{name}` | {entry.kind.lower()} | {entry.description} |" for name, entry in sorted(OBJECTS.items()))
    other_shared = [f"| `{column}` (wherever it appears) | {text} |" for column, text in SHARED.items() if column not in PARQUET_COLUMNS + ("run_date",)]
    view_columns = "\n".join(other_shared + [
        f"| `{name}.{column}` | {text} |"
        for name, entry in sorted(OBJECTS.items())
        for column, text in entry.columns.items()
    ])
    return (
        f"{START}\n"
        f"**Parquet** `recommendations/run_date=YYYY-MM-DD/data.parquet` ({PARQUET_DESCRIPTION.rstrip('.')}; "
        "the same text is in the file's key-value metadata, `recs.description` and `recs.column.<name>`):\n\n"
        f"| column | description |\n|---|---|\n{parquet}\n\n"
        "**DuckDB** `recs.duckdb` (the same text is in `COMMENT ON`: `duckdb_tables()`, `duckdb_views()`, "
        "`duckdb_columns()`; the Parquet columns above have the same description wherever they appear):\n\n"
        f"| table / view | kind | description |\n|---|---|---|\n{objects}\n\n"
        f"| column | description |\n|---|---|\n{view_columns}\n"
        f"{END}"
    )


def readme_with_dictionary(readme: str) -> str:
    """`readme` with its data dictionary section replaced by the current one."""
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return before + markdown() + after


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else README
    path.write_text(readme_with_dictionary(path.read_text()))
