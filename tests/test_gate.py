"""The nightly LLM gate (issue 13 §1, §5): a canary of held-out users decides whether the LLM's order
is published. Proved with two brains of the local server that know the true ratings: one ranks by them
(the gate opens and the published lists beat ALS on likes the pipeline never saw), one ranks worst
first (the gate closes and the published lists are the ALS lists). MovieLens 100k (first USERS users)."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from prefect.client.orchestration import get_client

from conftest import ML100K, RUN_DATE
from flows.nightly import nightly_for
from flows.parameters import RunParameters
from hidden_likes import als_lists, hide_likes, ndcg, published
from llm_server import OpenAICompatibleServer, knows_ratings, worst_first
from tasks.gate import GateDecision, gate_rule, gated_settings
from tasks.llm_client import reset_shared_state
from tasks.settings import Settings

pytestmark = pytest.mark.usefixtures("prefect_server")
USERS = 300  # MovieLens 100k users 1..USERS
HIDDEN = 0.1  # share of their likes the pipeline never sees (the test's own holdout)


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    """(data dir without the hidden likes, the hidden likes (user_id, item_id), every true (user, title, rating))."""
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K} (not redistributable; set ML100K_DIR to a copy)")
    data = tmp_path_factory.mktemp("ml100k-gate")
    return data, *hide_likes(ML100K, data, HIDDEN, USERS)


@pytest.fixture(autouse=True)
def gate_env(monkeypatch):
    reset_shared_state()
    for name, value in {"OPENAI_API_KEY": "sk-test-gate", "RECS_LLM_GATE": "auto", "RECS_LLM_SHARED_LIMIT": "local",
                        "RECS_LLM_RPM": 100_000, "RECS_LLM_TPM": 100_000_000, "RECS_LLM_CONCURRENCY": 8,
                        "RECS_GATE_USERS": 120}.items():
        monkeypatch.setenv(name, str(value))
    yield monkeypatch
    reset_shared_state()


def run_night(home, data, server, env):
    env.setenv("OPENAI_BASE_URL", server.base_url)
    params = RunParameters(home=home, data=data, run_date=RUN_DATE, ranker="llm")
    return nightly_for(params.settings())(params)


def newest_artifacts(*keys: str) -> list[str]:
    """The markdown of the newest artifact of each key."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    return [max((a for a in artifacts if a.key == key), key=lambda a: a.created).data for key in keys]


def gate_row(home) -> dict:
    with duckdb.connect(str(home / "recs.duckdb"), read_only=True) as con:
        row = con.sql("SELECT * FROM gate_runs").pl()
        canary = con.sql("SELECT * FROM gate_canary ORDER BY blend_weight").pl()
        drift = con.sql("SELECT * FROM gate_drift").pl()
        calls = con.sql("SELECT count(*) FROM llm_calls WHERE outcome <> 'cache_hit'").fetchall()[0][0]
    assert row.height == 1 and canary.height == 6 and drift.height == 1
    return {**row.row(0, named=True), "canary": canary, "drift": drift, "calls": calls}


def test_a_brain_that_knows_the_ratings_opens_the_gate_and_beats_als_and_a_rerun_pays_nothing(tmp_path, movielens, gate_env):
    data, held, truth = movielens
    with OpenAICompatibleServer(default_brain=knows_ratings(truth, noise=0.5, seed=1)) as server:
        summary = run_night(tmp_path, data, server, gate_env)
        first_calls = server.count()
        again = run_night(tmp_path, data, server, gate_env)
        rerun_calls = server.count() - first_calls
    gate = gate_row(tmp_path)
    assert summary["llm_gate"].startswith("llm gated on: blend weight "), summary["llm_gate"]
    assert gate["open"] and gate["best_ndcg"] > gate["als_ndcg"] and gate["lower_bound"] >= 0 and gate["users"] == 120
    assert gate["sent_users"] == 120 and gate["calls"] == first_calls - 1, "canary and nightly calls are in llm_calls"
    recs = published(tmp_path, RUN_DATE)
    assert set(recs["ranker"]) == {"llm"}
    assert ndcg(recs.select("user_id", "rank", "item_id"), held) > ndcg(als_lists(tmp_path, RUN_DATE), held) + 0.05
    assert again["llm_gate"].endswith("(decided earlier tonight, reused)")
    assert rerun_calls == 1, "a rerun sends only its preflight: no canary, nothing left to rank"


def test_a_brain_that_ranks_worst_first_closes_the_gate_and_als_lists_are_published(tmp_path, movielens, gate_env):
    data, held, truth = movielens
    with OpenAICompatibleServer(default_brain=worst_first(truth)) as server:
        summary = run_night(tmp_path, data, server, gate_env)
        calls = server.count()
        gate_env.setenv("RECS_LLM_MODEL", "another-model")
        other = run_night(tmp_path, data, server, gate_env)
        other_calls = server.count() - calls
    gate = gate_row(tmp_path)
    assert summary["llm_gate"].startswith("llm gated off: best hybrid "), summary["llm_gate"]
    assert f"on 120 users" in summary["llm_gate"] and not gate["open"]
    assert gate["canary"].filter(blend_weight=1.0)["ndcg_at_10"][0] < gate["als_ndcg"] / 2
    assert calls == 1 + 120, "the preflight and the canary: nobody else is sent to the LLM"
    artifacts = newest_artifacts(f"recs-{RUN_DATE}-llm-gate", f"recs-{RUN_DATE}-summary")
    assert artifacts[0].startswith(summary["llm_gate"]) and "| als | 120 |" in artifacts[0] and "| blend 1.0 | 120 |" in artifacts[0]
    assert f"- {summary['llm_gate']}\n" in artifacts[1]
    recs = published(tmp_path, RUN_DATE)
    assert set(recs["ranker"]) == {"als"}
    assert recs.select("user_id", "rank", "item_id").sort("user_id", "rank").equals(als_lists(tmp_path, RUN_DATE).sort("user_id", "rank"))
    # the decision was another model's: the rerun tests this one afresh (and it closes too)
    assert other_calls == 1 + 120 and not other["llm_gate"].endswith("reused)") and other["llm_gate"].startswith("llm gated off")


def test_gate_off_runs_no_canary(tmp_path, gate_env):
    gate_env.setenv("RECS_LLM_GATE", "off")
    for name, value in {"RECS_GEN_USERS": 40, "RECS_GEN_ITEMS": 150, "RECS_GEN_RATINGS": 2500}.items():
        gate_env.setenv(name, str(value))
    with OpenAICompatibleServer() as server:
        gate_env.setenv("OPENAI_BASE_URL", server.base_url)
        params = RunParameters(home=tmp_path, run_date=RUN_DATE, ranker="llm")
        summary = nightly_for(params.settings())(params)
        calls = server.count()
    assert summary["llm_gate"] is None and "llm gate" not in summary["seconds"]
    assert calls == 1 + 40 and not (tmp_path / "canary").exists()
    assert set(published(tmp_path, RUN_DATE)["ranker"]) == {"llm"}


def test_gate_rule_takes_the_smaller_weight_on_ties_and_needs_a_confident_gain():
    als = np.array([0.2, 0.4, 0.0, 0.6])
    assert gate_rule(als, {0.0: als, 0.5: als + 0.1, 1.0: als + 0.1}, seed=1).weight == 0.5
    tie = gate_rule(als, {0.0: als, 1.0: als}, seed=1)
    assert (tie.weight, tie.open) == (0.0, False), "no gain: closed"
    noisy = gate_rule(als, {1.0: als + np.array([0.9, -0.8, 0.0, 0.0])}, seed=1)
    assert noisy.mean_gain > 0 and not noisy.open, "a gain the bootstrap cannot trust keeps the gate closed"


def test_the_gate_mode_is_a_run_parameter_and_a_flag():
    from typer.testing import CliRunner

    from flows.cli import app

    assert RunParameters(llm_gate="on").settings().llm_gate == "on"
    assert "--llm-gate" in CliRunner().invoke(app, ["run", "--help"], terminal_width=200).output


def test_gated_settings_follow_the_mode_and_count_canary_users_against_the_cap():
    decision = GateDecision(False, 0.75, 0.3, 0.2, -0.1, 200, 200, 150, "m", "rank_v3", "llm gated off: …")
    auto = Settings(ranker="llm", llm_gate="auto", llm_max_users=500)
    assert gated_settings(auto, decision).ranker == "als"
    opened = gated_settings(auto, GateDecision(**{**decision.__dict__, "open": True}))
    assert (opened.ranker, opened.llm_blend_weight, opened.llm_max_users) == ("llm", 0.75, 350)
    forced = gated_settings(auto.model_copy(update={"llm_gate": "on"}), decision)
    assert (forced.ranker, forced.llm_blend_weight) == ("llm", auto.llm_blend_weight)
