"""Offline evaluation: the original MF + LLM experiment's protocol, reproduced method by method.

Protocol (the original experiment's): like = rating > `like_threshold` (3), 90/10 random split of
the likes with implicit's `train_test_split` (seed 42), ALS fitted on the training likes, 30
candidates per test user with every item the user rated outside the test part filtered, and
Precision / Recall / DCG / NDCG / MAP at 5, 10, 15, 20 over all test users. With `sample_users`
the metrics are averaged over a seeded random sample of test users instead (the original used 20),
with a percentile-bootstrap 95 % confidence interval, to show how noisy such a sample is.

`split="ua"` / `"ub"` uses MovieLens 100k's own fixed splits instead of the random one (the
`ua.base`/`ua.test` files of the full archive: 10 ratings per user in the test part): ALS and
popularity learn from the likes in `.base`, relevance is the likes in `.test`, and only pairs
rated in `.base` are filtered (the test part is unknown at recommendation time).

Rows (column `method`):
- `popularity`: the most liked training items the user has not seen;
- `als (original 50f)`: 50 factors, regularization 0.01, 15 iterations, alpha 1;
- `als (defaults)`: the project's current Settings;
- `als + als ranker`: the defaults model's candidates (tasks/candidates.py, with evidence) passed
  through the real `AlsRanker` (rankers/als.py); it keeps ALS order, so it equals `als (defaults)`
  by construction; computing it through the production path checks exactly that;
- `als + llm ranker`, `als + llm hybrid`, `als + llm gated hybrid` (only with an LLM endpoint
  configured; otherwise status "not run", values empty, never faked): the same candidates (30 per
  user from the defaults model, seen items filtered, with evidence) stored in a throwaway DuckDB
  holding the catalogue and only the interactions the model may know (every held-out pair removed,
  so the prompt's history never shows the test set), then ranked by the real `LlmRanker`
  (rankers/llm.py via evaluation/held_out.py) exactly as in production: `llm_blend_weight` 1.0 (pure
  LLM order), the configured blend, and what the nightly LLM gate (tasks/gate.py) would publish,
  cross-fitted: each half of the users gets the blend the gate chooses on the other half, or ALS
  order where it stays closed. LLM calls cost money, so they run for a seeded sample of
  `llm_users` evaluated users (all when fewer), next to `als (llm subset)`: the defaults model over
  the same users, for a fair side-by-side. The hybrid and the gated blends send the ranker's prompts,
  so they are answered from the LLM cache (no second set of calls); the opt-in modes pay for theirs.
  Users the LLM could not rank keep ALS order (the ranker's fallback) and the status says how many
  and why; when every user fell back, or the ranker failed, the values stay empty with the reason.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import get_args

import numpy as np
import polars as pl

from evaluation.held_out import held_out_candidates, item_rows, known_pairs, ndcg_per_user, rank_blends, stored_candidates
from evaluation.metrics import CUTOFFS, hit_matrix, per_user_metrics, ranking_metrics
from rankers.als import AlsRanker
from rankers.llm import LlmRanker
from tasks import db
from tasks.candidates import als_candidates, long_frame
from tasks.db import connect
from tasks.errors import InputError
from tasks.gate import BLEND_WEIGHTS, gate_rule
from tasks.ingest import detect_source, ingest_source, resolve_source
from tasks.llm_client import redact
from tasks.report import explanation_line
from tasks.settings import EVAL_LLM_USERS, Settings, SplitName
from tasks.train import (
    PAD,
    Holdout,
    Interactions,
    als_topn,
    fit_als,
    load_interactions,
    popularity_topn,
    split_interactions,
    to_matrices,
)

ORIGINAL_ALS = {"als_factors": 50, "als_regularization": 0.01, "als_iterations": 15, "als_alpha": 1.0}
METRICS = ("precision", "recall", "dcg", "ndcg", "map")
VARIANT_METHODS = ("als + llm ranker", "als + llm hybrid", "als + llm hybrid, rationale-first", "als + llm hybrid, 3 permutations")
LLM_VARIANTS = (  # the settings each LLM method changes; the prompts of the first two are the same (cached)
    {"llm_blend_weight": 1.0, "llm_liked_first": True}, {}, {"llm_prompt_version": "rationale_v1"}, {"llm_permutations": 3},
)
GATED_METHOD = "als + llm gated hybrid"  # what the nightly LLM gate would publish (its blends: the plain prompt, cached)
LLM_METHODS = (*VARIANT_METHODS, GATED_METHOD)
LLM_BASELINE = "als (llm subset)"
METHODS = ("popularity", "als (original 50f)", "als (defaults)", "als + als ranker", LLM_BASELINE, *LLM_METHODS)
N_CANDIDATES = 30
SPLITS = get_args(SplitName)
BOOTSTRAP = 2000


def load_dataset(data: Path | None, settings: Settings) -> Interactions:
    """Ingest `data` (None: the built-in generated dataset) into a throwaway DuckDB; likes valued 1."""
    with tempfile.TemporaryDirectory(prefix="recs-eval-") as tmp, connect(Path(tmp) / "eval.duckdb") as con:
        ingest_into(con, data, settings, Path(tmp))
        return load_interactions(con, settings.like_threshold, 1.0)


def ingest_into(con, data: Path | None, settings: Settings, tmp: Path) -> None:
    """Ingest `data` (None: the built-in generated dataset, written under `tmp`) into `con`."""
    source = detect_source(data, settings.catalog) if data is not None else resolve_source(
        settings.model_copy(update={"home": tmp, "data": None})
    )
    ingest_source(con, source)


def fixed_split_dir(data: Path | None, split: SplitName) -> Path:
    """The directory holding `<split>.base` and `<split>.test`, or an InputError saying what is missing."""
    if split not in SPLITS[1:]:
        raise InputError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    if data is None:
        raise InputError(f"--split {split} needs --data pointing at a MovieLens 100k directory (the built-in dataset has no fixed splits)")
    directory = data if data.is_dir() else data.parent
    missing = [name for name in (f"{split}.base", f"{split}.test") if not (directory / name).exists()]
    if missing:
        raise InputError(
            f"--split {split} needs {split}.base and {split}.test in {directory}, missing: {', '.join(missing)}; "
            f"they ship with the full ml-100k archive (or run its mku.sh); use --split random on this copy"
        )
    return directory


def read_ml100k_ratings(path: Path) -> pl.DataFrame:
    """A u.data-format file (user, item, rating, timestamp, tab-separated) as a frame."""
    return pl.read_csv(
        path, separator="\t", has_header=False, new_columns=["user_id", "item_id", "rating", "timestamp"],
        schema_overrides={"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Float64, "timestamp": pl.Int64},
    )  # fmt: skip


def fixed_holdout(data: Path | None, split: SplitName, settings: Settings) -> Holdout:
    """MovieLens' `<split>.base` / `<split>.test` as a holdout: train on the base likes, test on the test likes."""
    directory = fixed_split_dir(data, split)
    base, test = (read_ml100k_ratings(directory / f"{split}.{part}") for part in ("base", "test"))
    overlap = base.join(test, on=["user_id", "item_id"], how="semi").height
    if overlap:
        raise InputError(f"{split}.base and {split}.test share {overlap} (user, item) pairs: not a split")
    both = pl.concat([base, test])
    user_ids, item_ids = np.unique(both["user_id"].to_numpy()), np.unique(both["item_id"].to_numpy())
    train = to_matrices(split_likes(base, settings.like_threshold), user_ids, item_ids, 1.0)
    held_out = to_matrices(split_likes(test, settings.like_threshold), user_ids, item_ids, 1.0).likes
    return Holdout(train.likes, held_out, train.seen, np.flatnonzero(np.diff(held_out.indptr) > 0), user_ids, item_ids)


def split_likes(ratings: pl.DataFrame, like_threshold: float) -> pl.DataFrame:
    """(user_id, item_id, rating, liked) of a u.data-format frame, likes as the nightly run defines them (sql/schema.sql)."""
    with tempfile.TemporaryDirectory(prefix="recs-eval-") as tmp, connect(Path(tmp) / "split.duckdb") as con:
        with db.registered(con, "split_ratings", ratings.rename({"timestamp": "ts"})):
            return db.frame(con, "compare/latest_ratings", {"like_threshold": like_threshold})


def als_settings(settings: Settings, **params) -> Settings:
    return settings.model_copy(update=params)


def fit(holdout: Holdout, settings: Settings):
    """ALS on the training likes with confidence alpha."""
    return fit_als((holdout.train * settings.als_alpha).tocsr(), settings)


def ranker_topn(model, holdout: Holdout, settings: Settings, depth: int) -> np.ndarray:
    """Candidates (with evidence) -> AlsRanker -> item rows per test user, as the nightly flow does it."""
    train = (holdout.train * settings.als_alpha).tocsr()
    ids, scores, evidence = als_candidates(model, train, holdout.seen, holdout.users, N_CANDIDATES, settings)
    frame = long_frame(holdout.users, np.arange(holdout.train.shape[1]), ids, scores, evidence, "als").with_columns(
        evidence_titles=pl.col("evidence_item_ids").list.eval(pl.element().cast(pl.String)),
        shared_genre=pl.lit(None, dtype=pl.String),
        model_version=pl.lit("eval"),
    )
    ranked = AlsRanker().rank(frame, depth)
    out = np.full((len(holdout.users), depth), PAD, dtype=np.int64)
    position = np.searchsorted(holdout.users, ranked["user_id"].to_numpy())
    out[position, ranked["rank"].to_numpy() - 1] = ranked["item_id"].to_numpy()
    return out


def score(method: str, recommended: np.ndarray, holdout: Holdout, rows: np.ndarray | None, resamples: np.ndarray | None) -> pl.DataFrame:
    """Metrics of one method over all test users (rows None) or over the sampled rows, with a bootstrap CI.

    `resamples` (bootstraps x len(rows), positions into rows) is shared by all methods: paired bootstrap."""
    depth = max(CUTOFFS)
    hits = hit_matrix(recommended[:, :depth], holdout.test[holdout.users])
    n_relevant = holdout.n_relevant
    if rows is None:
        return ranking_metrics(hits, n_relevant).with_columns(method=pl.lit(method), status=pl.lit("ok"))
    values = per_user_metrics(hits[rows], n_relevant[rows])
    records = []
    for (metric, k), v in values.items():
        means = v[resamples].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        records.append({"metric": metric, "k": k, "value": float(v.mean()), "ci_low": float(low), "ci_high": float(high)})
    return pl.DataFrame(records).with_columns(method=pl.lit(method), status=pl.lit("ok"))


def llm_configured(settings: Settings) -> bool:
    return settings.llm_base_url is not None


def not_run(method: str, reason: str, prefix: str = "not run: ") -> pl.DataFrame:
    return pl.DataFrame(
        [{"metric": m, "k": k, "value": None, "method": method, "status": f"{prefix}{reason}"} for m in METRICS for k in CUTOFFS],
        schema={"metric": pl.String, "k": pl.Int64, "value": pl.Float64, "method": pl.String, "status": pl.String},
    )


def llm_subset(evaluated: np.ndarray, llm_users: int | None, seed: int) -> np.ndarray:
    """Positions (into holdout.users) the LLM rows are computed on: a seeded sample of `llm_users` of the
    evaluated positions, sorted; all of them when there are no more than that (or llm_users is None)."""
    if llm_users is None or llm_users >= len(evaluated):
        return evaluated
    return np.sort(np.random.default_rng((seed, 1)).choice(evaluated, size=llm_users, replace=False))


def llm_topn(
    data: Path | None, settings: Settings, holdout: Holdout, model, positions: np.ndarray, depth: int
) -> dict[str, tuple[np.ndarray | None, str]]:
    """Per LLM method: (item rows per test user, -1 outside `positions`; or None) and its status.

    The defaults model's candidates of the users at `positions` go into a throwaway DuckDB that holds
    the catalogue and only the pairs the model may know (`holdout.seen`: the held-out ones deleted),
    then the real `LlmRanker` ranks them without ever seeing the test set, once per LLM_VARIANTS entry
    and at the gate's blend weights (evaluation/held_out.py; `gated_rows`), every plain-prompt ranking after
    the first answered from the LLM cache."""
    user_rows = holdout.users[positions]
    frame = held_out_candidates(model, (holdout.train * settings.als_alpha).tocsr(), holdout, user_rows,
                                settings.model_copy(update={"n_candidates": N_CANDIDATES}))
    out: dict[str, tuple[np.ndarray | None, str]] = {}
    with tempfile.TemporaryDirectory(prefix="recs-eval-llm-") as tmp:
        base = settings.model_copy(update={"home": Path(tmp), "llm_max_users": None})  # llm_users is the cap here
        with connect(base) as con:
            ingest_into(con, data, settings, Path(tmp))
            with db.registered(con, "eval_known", known_pairs(holdout)):
                db.run(con, "compare/keep_known_pairs")
            candidates = stored_candidates(con, frame, base, "eval")
        for method, update in zip(VARIANT_METHODS, LLM_VARIANTS):
            try:
                ranked = LlmRanker(base.model_copy(update=update)).rank(candidates, depth)
            except Exception as error:  # noqa: BLE001 - the row says why it has no values
                out[method] = (None, failure(error, settings))
                continue
            usable, status = llm_status(ranked, len(user_rows))
            if usable:
                status += f"; explanations: {explanations_of(base, ranked)}"
            out[method] = (item_rows(ranked, holdout, depth) if usable else None, status)
        try:
            blends = rank_blends(base, candidates, BLEND_WEIGHTS, depth)
        except Exception as error:  # noqa: BLE001 - the row says why it has no values
            out[GATED_METHOD] = (None, failure(error, settings))
            return out
    usable, status = llm_status(blends[1.0], len(user_rows))
    if not usable:
        out[GATED_METHOD] = (None, status)
        return out
    als = item_rows(AlsRanker().rank(candidates, depth), holdout, depth)
    lists = {w: item_rows(r, holdout, depth) for w, r in blends.items()}
    gated, note = gated_rows(als, lists, holdout, positions, settings.split_seed)
    out[GATED_METHOD] = (gated, f"{status}; {note}")
    return out


def explanations_of(settings: Settings, ranked: pl.DataFrame) -> str:
    """The explanation quality of ranked lists (tasks/report.py explanation_line), stored as the evaluation
    DuckDB's ranked rows of settings.run_date next to the candidates they came from."""
    with connect(settings) as con, db.transaction(con):
        db.run(con, "rank/clear", {"run_date": settings.run_date})
        with db.registered(con, "new_ranked", ranked):
            db.run(con, "rank/insert_batch", {"run_date": settings.run_date})
        con.execute(db.sql("views"))
        return explanation_line(con, settings.run_date)


def failure(error: Exception, settings: Settings) -> str:
    """The status of an LLM row whose ranker failed (the key redacted)."""
    return "failed: " + redact(f"{type(error).__name__}: {error}", settings)


def llm_status(ranked: pl.DataFrame, n_users: int) -> tuple[bool, str]:
    """Whether an LLM row has values (not every user fell back to ALS order) and its status."""
    fell_back = ranked.filter(pl.col("ranker") != "llm").unique("user_id", maintain_order=True)
    why = f" ({fell_back['fallback_reason'][0]})" if fell_back.height else ""
    if fell_back.height == n_users:
        return False, f"failed: all {n_users} users fell back to ALS order{why}"
    return True, f"ok: {fell_back.height} of {n_users} users kept ALS order{why}" if fell_back.height else "ok"


def gated_rows(als: np.ndarray, lists: dict[float, np.ndarray], holdout: Holdout, positions: np.ndarray,
               seed: int) -> tuple[np.ndarray, str]:
    """What the nightly gate would publish, cross-fitted: the users at `positions` are cut into two seeded
    halves; each half gets the blend the gate (tasks/gate.py) chooses on the other half, or ALS order when
    it stays closed there. Returns the item rows and which weight each half got."""
    halves = np.array_split(np.random.default_rng((seed, 3)).permutation(positions), 2)
    out, notes = als.copy(), []
    for half, other in ((halves[0], halves[1]), (halves[1], halves[0])):
        if len(other) == 0:
            continue
        verdict = gate_rule(ndcg_per_user(als, holdout, other), {w: ndcg_per_user(lists[w], holdout, other) for w in BLEND_WEIGHTS},
                            seed)
        if verdict.open:
            out[half] = lists[verdict.weight][half]
        notes.append(f"blend {verdict.weight:g}" if verdict.open else "als (gate closed)")
    return out, "gate chose on the other half: " + ", ".join(notes)


def compare_methods(
    data: Path | None,
    settings: Settings,
    *,
    sample_users: int | None = None,
    seed: int = 42,
    n_boot: int = BOOTSTRAP,
    interactions: Interactions | None = None,
    split: SplitName = "random",
    llm_users: int | None = EVAL_LLM_USERS,
) -> pl.DataFrame:
    """Long frame method, metric, k, value, status, users (+ ci_low, ci_high when users were sampled).

    `seed` seeds the holdout split (the original: 42), the user samples and the bootstraps.
    Pass `interactions` to skip ingestion (already loaded with `load_dataset` from `data`).
    `split`: "random" (the original protocol) or a MovieLens fixed split, "ua" / "ub" (`fixed_holdout`).
    `llm_users`: with an LLM endpoint configured, the LLM rows (and `als (llm subset)`) are computed
    on a seeded sample of this many evaluated users (None: all of them).
    """
    if split == "random":
        data_ = interactions if interactions is not None else load_dataset(data, settings)
        holdout = split_interactions(data_, settings.test_fraction, seed)
    else:
        holdout = fixed_holdout(data, split, settings)
    if len(holdout.users) == 0:
        raise InputError(f"too few likes ({holdout.train.nnz + holdout.test.nnz}) to hold any out for evaluation")
    rng = np.random.default_rng(seed)
    rows = resamples = None
    if sample_users is not None:
        rows = np.sort(rng.choice(len(holdout.users), size=min(sample_users, len(holdout.users)), replace=False))
        resamples = rng.integers(0, len(rows), size=(n_boot, len(rows)))

    original = als_settings(settings, **ORIGINAL_ALS)
    original_model, default_model = fit(holdout, original), fit(holdout, settings)
    depth = max(CUTOFFS)
    recommended = {
        "popularity": popularity_topn(holdout, N_CANDIDATES),
        "als (original 50f)": als_topn(original_model, holdout, N_CANDIDATES),
        "als (defaults)": als_topn(default_model, holdout, N_CANDIDATES),
        "als + als ranker": ranker_topn(default_model, holdout, settings, depth),
    }
    n_users = len(holdout.users) if rows is None else len(rows)
    frames = [score(method, ids, holdout, rows, resamples).with_columns(users=pl.lit(n_users)) for method, ids in recommended.items()]
    if llm_configured(settings):
        evaluated = np.arange(len(holdout.users)) if rows is None else rows
        positions = llm_subset(evaluated, llm_users, seed)
        sub_rows, sub_resamples = rows, resamples
        if len(positions) < len(evaluated):  # a sample of its own: its own paired bootstrap
            sub_rows = positions
            sub_resamples = np.random.default_rng((seed, 2)).integers(0, len(positions), size=(n_boot, len(positions)))
        subset = {LLM_BASELINE: (recommended["als (defaults)"], "ok"),
                  **llm_topn(data, settings, holdout, default_model, positions, depth)}
        for method, (ids, status) in subset.items():
            frame = (score(method, ids, holdout, sub_rows, sub_resamples).with_columns(status=pl.lit(status))
                     if ids is not None else not_run(method, status, prefix=""))
            frames.append(frame.with_columns(users=pl.lit(len(positions))))
    else:
        frames += [not_run(method, "no LLM endpoint configured").with_columns(users=pl.lit(n_users)) for method in LLM_METHODS]
    sampled = any("ci_low" in f.columns for f in frames)
    columns = ["method", "metric", "k", "value"] + (["ci_low", "ci_high"] if sampled else []) + ["status", "users"]
    frames = [f.with_columns(*(pl.lit(None, pl.Float64).alias(c) for c in columns if c not in f.columns)) for f in frames]
    return pl.concat([f.select(columns).cast({"k": pl.Int64, "value": pl.Float64, "users": pl.Int64}) for f in frames],
                     how="vertical_relaxed")


# ---------------------------------------------------------------- output


def render_table(metrics: pl.DataFrame, title: str = "Holdout evaluation"):
    """A rich table: one row per method x metric, one column per K (value, and [CI] when sampled);
    methods without values (not run, with the reason) in the caption."""
    from rich.table import Table

    sampled = "ci_low" in metrics.columns
    table = Table(title=title)
    table.add_column("method")
    table.add_column("metric")
    for k in CUTOFFS:
        table.add_column(f"@{k}", justify="right")
    main_users = metrics["users"][0] if "users" in metrics.columns and metrics.height else None
    not_run: list[str] = []
    for method in METHODS:
        rows_of = metrics.filter(method=method)
        if rows_of.is_empty():
            continue
        users = rows_of["users"][0] if "users" in rows_of.columns else None
        label = method if users is None or users == main_users else f"{method} ({users} users)"
        for metric in METRICS:
            cells = rows_of.filter(metric=metric).sort("k")
            if cells.is_empty():
                continue
            if cells["value"].null_count() == len(cells):
                if metric == METRICS[0]:
                    not_run.append(f"{label}: {cells['status'][0]}")
                continue
            texts = []
            for row in cells.iter_rows(named=True):
                text = f"{row['value']:.4f}"
                if sampled and row["ci_low"] is not None:
                    text += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
                texts.append(text)
            table.add_row(label, metric, *texts)
        status = rows_of["status"][0]
        if rows_of["value"].null_count() < rows_of.height and status != "ok":
            table.add_row(label, "note", f"[dim]{status}[/]", *[""] * (len(CUTOFFS) - 1))
        if not rows_of["value"].is_null().all():
            table.add_section()
    table.caption = "\n".join(not_run) or None
    return table


def write_json(metrics: pl.DataFrame, path: Path, protocol: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"protocol": protocol or {}, "rows": metrics.to_dicts()}, indent=2, default=str))


def write_plot(metrics: pl.DataFrame, path: Path, title: str = "") -> None:
    """One panel per metric, the metric against K, one line per method that ran (CI band when sampled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = metrics.filter(pl.col("value").is_not_null())
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6))
    for ax, metric in zip(axes, METRICS):
        for method in [m for m in METHODS if m in ran["method"].to_list()]:
            cells = ran.filter(method=method, metric=metric).sort("k")
            style = "--" if method == "als + als ranker" else "-"
            ax.plot(cells["k"], cells["value"], style, marker="o", label=method)
            if "ci_low" in cells.columns and cells["ci_low"].null_count() == 0:
                ax.fill_between(cells["k"], cells["ci_low"], cells["ci_high"], alpha=0.15)
        ax.set_title(metric)
        ax.set_xlabel("K")
        ax.set_xticks(list(CUTOFFS))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    skipped = sorted(set(metrics["method"]) - set(ran["method"]))
    if title or skipped:
        fig.suptitle(title + (f"  (not run: {', '.join(skipped)})" if skipped else ""), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def protocol(data: Path | None, settings: Settings, sample_users: int | None, seed: int, split: SplitName = "random",
             llm_users: int | None = EVAL_LLM_USERS) -> dict:
    fixed = split != "random"
    llm = ({"endpoint": "configured", "model": settings.llm_model, "prompt_version": settings.llm_prompt_version,
            "users": f"seeded sample of at most {llm_users} evaluated users" if llm_users else "all evaluated users",
            "ranker_blend_weight": 1.0, "hybrid_blend_weight": settings.llm_blend_weight,
            "gated_hybrid": "the LLM gate's rule (tasks/gate.py) on one half of the users decides the other half's order"}
           if llm_configured(settings) else "not run: no LLM endpoint configured")
    return {
        "data": str(data) if data is not None else "built-in generated dataset",
        "like": f"rating > {settings.like_threshold}",
        "split": f"MovieLens {split}.base / {split}.test (likes of the test part)" if fixed
        else f"implicit train_test_split of likes, test fraction {settings.test_fraction}, seed {seed}",
        "candidates": N_CANDIDATES,
        "seen_filter": f"every item rated in {split}.base" if fixed else "every item rated outside the test part",
        "original_als": ORIGINAL_ALS,
        "default_als": {k: getattr(settings, k) for k in ORIGINAL_ALS},
        "users": f"sample of {sample_users} test users, bootstrap 95% CI" if sample_users else "all test users",
        "llm": llm,
    }
