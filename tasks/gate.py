"""LLM gate: each llm night, a canary decides whether the LLM's order beats ALS before everyone is ranked.

The canary takes the train stage's holdout split (same seed: likes the model under test never
saw), refits ALS on its training part, and ranks a seeded sample of `gate_users` held-out users
with the real LlmRanker (evaluation/held_out.py) in `<home>/canary/recs.duckdb`: a file holding the
catalogue and the canary users' interactions minus the held-out pairs (their prompts read nothing
else), so the ranker's limits, cache and accounting run unchanged. Its calls are copied into the home's `llm_calls` and its users count
against `llm_max_users`.

NDCG@10 on the held-out likes of ALS order and of the LLM blend at each of BLEND_WEIGHTS (the
ranker's own blend, weight on the LLM position; 1 = LLM order) is stored in `gate_canary`. The
best weight (ties: the smaller, more ALS) opens the gate iff its mean paired gain over ALS is
positive and the 5th percentile of BOOTSTRAPS seeded paired-bootstrap means of the gain is not
negative. Open: tonight ranks with that weight. Closed: everyone gets the ALS ranker. The decision
(`gate_runs`) is reused by a rerun of the night. `llm_gate=on` publishes the LLM whatever the
canary says (at the configured weight); `off` runs no canary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import polars as pl
from prefect import task

from evaluation.held_out import held_out_candidates, item_rows, known_pairs, ndcg_per_user, rank_blends, stored_candidates
from rankers.als import AlsRanker
from tasks import db
from tasks.settings import Settings
from tasks.train import Holdout, fit_als, load_interactions, split_interactions

BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
DEPTH = 10  # NDCG@10
BOOTSTRAPS = 1000
LOWER_PERCENTILE = 5
CANARY_MODEL = "canary"


@dataclass(frozen=True)
class GateDecision:
    """One night's gate: the canary's figures, the rule's verdict and why (a row of gate_runs)."""

    open: bool
    chosen_weight: float
    als_ndcg: float
    best_ndcg: float
    lower_bound: float
    users: int
    llm_users: int
    sent_users: int
    model: str
    prompt_version: str
    reason: str
    reused: bool = False

    def __str__(self) -> str:
        return self.reason + (" (decided earlier tonight, reused)" if self.reused else "")


@dataclass(frozen=True)
class Verdict:
    open: bool
    weight: float
    mean_gain: float
    lower_bound: float


def gate_rule(als: np.ndarray, blends: dict[float, np.ndarray], seed: int, bootstraps: int = BOOTSTRAPS) -> Verdict:
    """Best blend weight by mean NDCG (ties: the smaller weight); open iff its mean paired gain over ALS
    is positive and the LOWER_PERCENTILE-th percentile of the bootstrap means of that gain is >= 0."""
    weight = min(blends, key=lambda w: (-float(blends[w].mean()), w))
    gain = blends[weight] - als
    resamples = np.random.default_rng((seed, 13)).integers(0, len(gain), size=(bootstraps, len(gain)))
    lower = float(np.percentile(gain[resamples].mean(axis=1), LOWER_PERCENTILE))
    mean_gain = float(gain.mean())
    return Verdict(mean_gain > 0 and lower >= 0, weight, mean_gain, lower)


def reason_text(verdict: Verdict, als: float, best: float, users: int) -> str:
    if verdict.open:
        return (f"llm gated on: blend weight {verdict.weight:g} scores {best:.3f} vs als {als:.3f} on {users} users "
                f"(gain {verdict.mean_gain:+.3f}, bootstrap {LOWER_PERCENTILE}th percentile {verdict.lower_bound:+.3f})")
    return (f"llm gated off: best hybrid {best:.3f} (weight {verdict.weight:g}) vs als {als:.3f} on {users} users "
            f"(bootstrap {LOWER_PERCENTILE}th percentile of the gain {verdict.lower_bound:+.3f})")


def sample_positions(n_users: int, size: int, seed: int) -> np.ndarray:
    """A seeded sample of `size` positions of n_users test users (all when fewer), sorted."""
    if size >= n_users:
        return np.arange(n_users)
    return np.sort(np.random.default_rng(seed).choice(n_users, size=size, replace=False))


def gated_settings(settings: Settings, decision: GateDecision | None) -> Settings:
    """The settings tonight's rank stage runs with: the ALS ranker when the gate is closed (and not forced
    on), else the LLM at the chosen weight (configured weight when forced on), with llm_max_users less the
    canary's users (the rank stage's cap plan is built once per night, so a rerun keeps it)."""
    if decision is None or settings.llm_gate == "off":
        return settings
    if settings.llm_gate == "auto" and not decision.open:
        return settings.model_copy(update={"ranker": "als"})
    update: dict = {} if settings.llm_gate == "on" else {"llm_blend_weight": decision.chosen_weight}
    if settings.llm_max_users is not None:
        update["llm_max_users"] = max(0, settings.llm_max_users - decision.sent_users)
    return settings.model_copy(update=update)


def canary_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"home": settings.home / "canary"})


def home_holdout(con, settings: Settings) -> Holdout:
    """The train stage's holdout split of the home's likes (same seed and fraction), with external ids."""
    data = load_interactions(con, settings.like_threshold, settings.als_alpha)
    return split_interactions(data, settings.test_fraction, settings.split_seed)


def fill_canary(con, home_interactions: pl.DataFrame, home_catalog: pl.DataFrame, known: pl.DataFrame) -> None:
    """The canary file's catalogue and the canary users' interactions, minus the held-out pairs."""
    with db.transaction(con):
        db.run(con, "gate/clear_catalog")
        db.run(con, "gate/clear_interactions")
        with db.registered(con, "home_catalog", home_catalog):
            db.run(con, "gate/copy_catalog")
        with db.registered(con, "home_interactions", home_interactions), db.registered(con, "known_pairs", known):
            db.run(con, "gate/copy_known_interactions")


def run_canary(settings: Settings) -> tuple[GateDecision, pl.DataFrame, pl.DataFrame]:
    """Rank the canary users (ALS and the LLM blends): the decision, the canary table and the canary's llm_calls."""
    with db.connect(settings) as con:
        holdout = home_holdout(con, settings)
        positions = sample_positions(len(holdout.users), settings.gate_users, settings.split_seed)
        canary_users = holdout.user_ids[holdout.users[positions]].tolist()
        home_interactions = db.frame(con, "gate/interactions", {"user_ids": canary_users})
        home_catalog = db.frame(con, "gate/catalog")
    if len(positions) == 0:
        reason = "llm gated off: no held-out likes to test the LLM on"
        decision = GateDecision(False, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, settings.llm_model, settings.llm_prompt_version, reason)
        return decision, pl.DataFrame(), pl.DataFrame()
    model = fit_als(holdout.train, settings)
    frame = held_out_candidates(model, holdout.train, holdout, holdout.users[positions], settings)
    canary = canary_settings(settings)
    with db.connect(canary) as con:
        fill_canary(con, home_interactions, home_catalog, known_pairs(holdout).filter(pl.col("user_id").is_in(canary_users)))
        candidates = stored_candidates(con, frame, canary, CANARY_MODEL)
        db.run(con, "gate/clear_calls", {"run_date": settings.run_date})
    llm_order = rank_blends(canary, candidates, (1.0,), DEPTH)  # pays for the calls ...
    with db.connect(canary) as con:
        calls = db.frame(con, "gate/canary_calls", {"run_date": settings.run_date})
    ranked = llm_order | rank_blends(canary, candidates, BLEND_WEIGHTS[:-1], DEPTH)  # ... the others hit the cache

    als = ndcg_per_user(item_rows(AlsRanker().rank(candidates, DEPTH), holdout, DEPTH), holdout, positions)
    blends = {w: ndcg_per_user(item_rows(ranked[w], holdout, DEPTH), holdout, positions) for w in BLEND_WEIGHTS}
    verdict = gate_rule(als, blends, settings.split_seed)
    best = float(blends[verdict.weight].mean())
    table = pl.DataFrame({
        "method": ["als", *["blend"] * len(BLEND_WEIGHTS)],
        "blend_weight": [-1.0, *BLEND_WEIGHTS],
        "users": [len(positions)] * (len(BLEND_WEIGHTS) + 1),
        "ndcg_at_10": [float(als.mean()), *(float(blends[w].mean()) for w in BLEND_WEIGHTS)],
        "mean_diff": [0.0, *(float((blends[w] - als).mean()) for w in BLEND_WEIGHTS)],
    })
    served = ranked[1.0].filter(pl.col("ranker") == "llm")["user_id"].n_unique()
    sent = calls.filter(pl.col("outcome") != "cache_hit")["user_id"].n_unique() if calls.height else 0
    decision = GateDecision(
        verdict.open, verdict.weight, float(als.mean()), best, verdict.lower_bound, len(positions), served, sent,
        settings.llm_model, settings.llm_prompt_version, reason_text(verdict, float(als.mean()), best, len(positions)),
    )
    return decision, table, calls


def record(con, settings: Settings, decision: GateDecision, table: pl.DataFrame, calls: pl.DataFrame) -> None:
    """The canary table, its calls (into the home's llm_calls) and the decision, together."""
    params = {"run_date": settings.run_date}
    row = pl.DataFrame([{k: v for k, v in dataclasses.asdict(decision).items() if k != "reused"}])
    with db.transaction(con):
        db.run(con, "gate/clear_canary", params)
        if table.height:
            with db.registered(con, "new_gate_canary", table):
                db.run(con, "gate/insert_canary", params)
        if calls.height:
            with db.registered(con, "new_llm_calls", calls):
                db.run(con, "llm/insert_calls", params)
        with db.registered(con, "new_gate_run", row):
            db.run(con, "gate/record_run", params)


def decide(settings: Settings) -> GateDecision:
    """Tonight's decision: the stored one on a rerun with the same model and prompt, else the canary's (recorded)."""
    with db.connect(settings) as con:
        stored = db.run(con, "gate/stored", {"run_date": settings.run_date, "model": settings.llm_model,
                                             "prompt_version": settings.llm_prompt_version})
    if stored:
        names = [f.name for f in dataclasses.fields(GateDecision) if f.name != "reused"]
        decision = GateDecision(**dict(zip(names, stored[0])), reused=True)
    else:
        decision, table, calls = run_canary(settings)
        with db.connect(settings) as con:
            record(con, settings, decision, table, calls)
    if settings.llm_gate == "on":
        return dataclasses.replace(decision, reason=f"llm forced on (llm_gate=on); canary: {decision.reason}")
    return decision


@task(name="llm-gate")
def gate(settings: Settings) -> GateDecision:
    """Prefect task: tonight's LLM gate decision (see the module docstring)."""
    return decide(settings)
