"""Explanations: grounded wording that varies with the evidence, and the per-night quality measures."""

from __future__ import annotations

from datetime import date

import polars as pl

from tasks import db
from tasks.rank import grounded_explanation


def explain(rows: list[dict]) -> list[str]:
    frame = pl.DataFrame(rows, schema={"source": pl.String, "evidence_titles": pl.List(pl.String), "shared_genre": pl.String})
    return frame.select(explanation=grounded_explanation())["explanation"].to_list()


def test_wording_names_the_lead_evidence_first_and_the_genre_it_shares():
    assert explain([
        {"source": "als", "evidence_titles": ["Alien", "Brazil", "Heat"], "shared_genre": "Sci-Fi"},
        {"source": "als", "evidence_titles": ["Alien"], "shared_genre": "Sci-Fi"},
        {"source": "als", "evidence_titles": ["Alien", "Brazil"], "shared_genre": None},
        {"source": "als", "evidence_titles": ["Alien"], "shared_genre": None},
        {"source": "als", "evidence_titles": [], "shared_genre": None},
        {"source": "popular", "evidence_titles": [], "shared_genre": None},
    ]) == [
        "Shares Sci-Fi with Alien; you also liked Brazil and Heat.",
        "Shares Sci-Fi with Alien, which you liked.",
        "Because you liked Alien and Brazil.",
        "Because you liked Alien.",
        "Fits the overall pattern of your ratings.",
        "One of the most liked titles overall; rate a few titles for personal picks.",
    ]


def test_quality_view_counts_distinct_texts_cited_items_and_llm_faithfulness(settings, con):
    night = date(2026, 11, 23)
    candidates = pl.DataFrame({
        "user_id": [1, 1, 2], "item_id": [10, 11, 10], "evidence_item_ids": [[100, 101], [100], [200]],
    })
    ranked = pl.DataFrame({
        "user_id": [1, 1, 2], "rank": [1, 2, 1], "item_id": [10, 11, 10],
        "explanation": ["Because you liked A.", "Because you liked A.", "Shares Drama with B, which you liked."],
        # user 1's LLM rows cite 100 (a top contributor of both items) and 102 (of neither); user 2's ALS row its own
        "evidence_item_ids": [[100, 102], [100], [200]], "ranker": ["llm", "llm", "als"],
    })
    with db.registered(con, "c", candidates), db.registered(con, "r", ranked):
        con.execute("INSERT INTO candidates SELECT $d, user_id, item_id, 1, 1.0, 'als', evidence_item_ids, 'v' FROM c", {"d": night})
        con.execute("INSERT INTO ranked SELECT $d, user_id, rank, item_id, 1.0, explanation, evidence_item_ids, ranker, 'v', NULL, NULL FROM r",
                    {"d": night})
    con.execute(db.sql("views"))

    quality = db.frame(con, "report/explanations", {"run_date": night}).row(0, named=True)

    assert quality["distinct_explanation_share"] == 2 / 3
    assert quality["evidence_items_per_user"] == (2 + 1) / 2  # user 1 cites 100 and 102, user 2 cites 200
    assert quality["llm_citations"] == 3 and quality["llm_faithfulness"] == 2 / 3
