"""The llm ranker's pure parts (rankers/answer.py, rankers/blend.py) on hand-made answers."""

from __future__ import annotations

import json

import pytest

from rankers.answer import Unusable, repair_answer
from rankers.blend import aggregate, blend_score, normalised
from rankers.context import UserContext


def context() -> UserContext:
    candidates = [{"title": title} for title in ("Heat", "Brazil", "Fargo")]  # c1, c2, c3 in ALS order
    liked = {"h1": {"item_id": 100, "title": "Alien"}, "h2": {"item_id": 101, "title": "Ran"}}
    return UserContext(7, candidates, liked, {}, 2, 0, [], [], [[0, 1, 2]])


def answer(*entries: dict) -> str:
    return json.dumps({"ranking": list(entries)})


def test_repair_keeps_known_ids_once_appends_the_missing_in_als_order_and_strips_foreign_citations():
    repaired = repair_answer(context(), [0, 1, 2], answer(
        {"id": "c3", "like": True, "explanation": "Like h1, a tense classic.", "evidence": ["h1", "h9", "c2"]},
        {"id": "c9", "like": True},  # unknown
        {"id": "c3", "like": False},  # duplicate
        {"like": True},  # invalid
    ), None, max_evidence=2, max_chars=200)

    assert repaired.ordered == [(2, True, "Like Alien, a tense classic.", [100]), (0, False, None, []), (1, False, None, [])]
    assert (repaired.hallucinated_ids, repaired.duplicate_ids, repaired.missing_ids, repaired.stripped_citations) == (2, 1, 2, 2)


def test_an_explanation_that_names_none_of_its_evidence_or_an_unknown_id_is_dropped():
    repaired = repair_answer(context(), [0, 1], answer(
        {"id": "c1", "explanation": "You will love it.", "evidence": ["h1"]},
        {"id": "c2", "explanation": "Much like h7.", "evidence": ["h2"]},
    ), None, max_evidence=2, max_chars=200)

    assert [(index, explanation, evidence) for index, _, explanation, evidence in repaired.ordered] == [
        (0, None, [100]), (1, None, [101])]


def test_an_answer_without_a_known_candidate_is_unusable_and_counts_its_unknown_entries():
    with pytest.raises(Unusable, match="no known candidate id") as unusable:
        repair_answer(context(), [0, 1, 2], answer({"id": "c8"}, {"id": "h1"}), None, max_evidence=2, max_chars=200)
    assert unusable.value.hallucinated_ids == 2


def test_permutations_give_the_mean_position_the_majority_like_and_the_first_usable_explanation():
    first = [(0, True, None, []), (1, False, "B", [100]), (2, True, "C", [101])]
    second = [(2, True, "C2", [100]), (0, False, "A", [101]), (1, False, None, [])]

    position, liked, picks = aggregate([first, second])

    assert position == {0: 0.75, 1: 0.25, 2: 0.5}
    assert liked == {0: True, 1: False, 2: True}  # a tie counts as liked
    assert picks == {0: ("A", [101]), 1: ("B", [100]), 2: ("C", [101])}


def test_blend_weighs_the_llm_position_against_the_normalised_als_score_and_lifts_liked_items():
    assert normalised([2.0, 1.0, 3.0]) == [0.5, 0.0, 1.0]
    assert normalised([1.0, 1.0]) == [1.0, 1.0]
    assert blend_score(1.0, 0.0, like=False, weight=0.25, liked_first=True) == 0.25
    assert blend_score(0.0, 1.0, like=True, weight=0.25, liked_first=True) == 1.75
    assert blend_score(0.0, 1.0, like=True, weight=0.25, liked_first=False) == 0.75
