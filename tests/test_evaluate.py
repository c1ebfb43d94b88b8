"""Offline evaluation (evaluation/compare.py): the original protocol on MovieLens 100k, outputs, sampling CI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import ML100K

from evaluation.compare import (
    LLM_BASELINE,
    LLM_METHODS,
    METHODS,
    METRICS,
    N_CANDIDATES,
    compare_methods,
    fit,
    fixed_holdout,
    llm_subset,
    load_dataset,
    read_ml100k_ratings,
    render_table,
    split_likes,
    write_json,
    write_plot,
)
from evaluation.metrics import CUTOFFS, hit_matrix, per_user_metrics
from tasks.settings import Settings
from tasks.train import als_topn, split_holdout

LLM_ENV = ("OPENAI_BASE_URL", "RECS_LLM_BASE_URL", "OPENAI_API_KEY", "RECS_LLM_API_KEY")
NO_LLM = [m for m in METHODS if m != LLM_BASELINE]  # without an endpoint there is no LLM subset either


@pytest.fixture(scope="module", autouse=True)
def no_llm_endpoint():
    """No test here may reach a real endpoint configured in the developer's environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name in LLM_ENV:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def ml100k_data():
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K}")
    return ML100K, load_dataset(ML100K, Settings())


@pytest.fixture(scope="module")
def full(ml100k_data) -> pl.DataFrame:
    path, data = ml100k_data
    return compare_methods(path, Settings(), interactions=data)


def value(metrics: pl.DataFrame, method: str, metric: str, k: int) -> float:
    return metrics.filter(method=method, metric=metric, k=k)["value"].item()


def test_every_method_metric_and_cutoff(full):
    assert full.height == len(NO_LLM) * len(METRICS) * len(CUTOFFS)
    assert set(full.select("method", "metric", "k").iter_rows()) == {
        (m, metric, k) for m in NO_LLM for metric in METRICS for k in CUTOFFS
    }
    assert full.filter(pl.col("method").is_in(LLM_METHODS))["value"].null_count() == len(LLM_METHODS) * 20
    assert (full.filter(pl.col("method").is_in(LLM_METHODS))["status"] == "not run: no LLM endpoint configured").all()
    assert full.filter(~pl.col("method").is_in(LLM_METHODS))["value"].null_count() == 0


def test_values_in_range_and_als_beats_popularity(full):
    bounded = full.filter(pl.col("metric") != "dcg", pl.col("value").is_not_null())["value"]
    assert ((bounded >= 0) & (bounded <= 1)).all()
    assert (full.filter(metric="dcg")["value"].drop_nulls() >= 0).all()
    popularity = value(full, "popularity", "ndcg", 10)
    assert value(full, "als (original 50f)", "ndcg", 10) > popularity + 0.05
    assert value(full, "als (defaults)", "ndcg", 10) > popularity + 0.05
    # the als ranker keeps ALS order: the production candidates -> AlsRanker path must equal plain ALS
    ranker, als = full.filter(method="als + als ranker"), full.filter(method="als (defaults)")
    assert np.allclose(ranker.sort("metric", "k")["value"], als.sort("metric", "k")["value"])


def test_json_plot_and_table(full, tmp_path: Path):
    write_json(full, tmp_path / "m.json", {"seed": 42})
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    assert len(rows) == full.height and {"method", "metric", "k", "value", "status"} <= set(rows[0])
    write_plot(full, tmp_path / "m.png", "ml-100k")
    png = (tmp_path / "m.png").read_bytes()
    assert len(png) > 10_000 and png.startswith(b"\x89PNG")
    import io

    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=200).print(render_table(full))
    assert "als (original 50f)" in out.getvalue() and "not run" in out.getvalue()


def test_twenty_user_sample_has_a_ci_around_its_estimate(ml100k_data, tmp_path: Path):
    path, data = ml100k_data
    sampled = compare_methods(path, Settings(), sample_users=20, interactions=data, n_boot=500)
    ran = sampled.filter(pl.col("value").is_not_null())
    assert (ran["users"] == 20).all()
    assert ((ran["ci_low"] <= ran["value"]) & (ran["value"] <= ran["ci_high"])).all()
    assert (ran.filter(metric="ndcg", k=10).select(pl.col("ci_high") - pl.col("ci_low"))["ci_high"] > 0.02).all()
    write_plot(sampled, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_eval_command_writes_files(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("RECS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECS_GEN_USERS", "120")
    monkeypatch.setenv("RECS_GEN_ITEMS", "200")
    monkeypatch.setenv("RECS_GEN_RATINGS", "6000")
    result = CliRunner().invoke(app, ["eval", "--json", str(tmp_path / "m.json"), "--plot", str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.json").stat().st_size > 0 and (tmp_path / "m.png").stat().st_size > 0
    assert "popularity" in result.output
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]  # the built-in dataset, no MovieLens needed
    assert all(r["value"] >= 0 for r in rows if r["method"] == "als (defaults)")


# ---------------------------------------------------------------- MovieLens fixed splits (ua / ub)


def allbut(directory: Path, name: str, start: int, stop: int) -> None:
    """ml-100k's mku.sh / allbut.pl: the start..stop-th ratings of each user (file order) go to `<name>.test`.

    Written under tmp_path next to symlinks of u.data, u.item and u.genre: the dataset is never copied."""
    ratings = read_ml100k_ratings(directory / "u.data").with_columns(n=pl.int_range(1, pl.len() + 1).over("user_id"))
    in_test = pl.col("n").is_between(start, stop)
    for part, rows in (("test", ratings.filter(in_test)), ("base", ratings.filter(~in_test))):
        rows.drop("n").sort("user_id", "item_id").write_csv(directory / f"{name}.{part}", separator="\t", include_header=False)


@pytest.fixture(scope="module")
def split_dir(ml100k_data, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ml-100k-splits")
    for name in ("u.data", "u.item", "u.genre"):
        (directory / name).symlink_to(ML100K / name)
    allbut(directory, "ua", 1, 10)
    allbut(directory, "ub", 11, 20)
    return directory


def test_fixed_splits_train_on_base_and_test_on_test(split_dir):
    settings = Settings()
    ua, ub = fixed_holdout(split_dir, "ua", settings), fixed_holdout(split_dir, "ub", settings)
    assert ua.test.nnz == split_likes(read_ml100k_ratings(split_dir / "ua.test"), settings.like_threshold)["liked"].sum()
    assert (ua.n_relevant <= 10).all() and len(ua.users) > 900
    assert ua.test.multiply(ua.train).nnz == 0 and ua.test.multiply(ub.test).nnz == 0, "disjoint, as the README says"
    assert ua.seen.multiply(ua.test).nnz == 0, "the test part is not filtered: it is unknown when recommending"
    metrics = compare_methods(split_dir, settings, split="ua")
    assert value(metrics, "als (defaults)", "ndcg", 10) > value(metrics, "popularity", "ndcg", 10) + 0.05
    assert metrics["users"][0] == len(ua.users)
    assert metrics.filter(pl.col("method").is_in(LLM_METHODS))["status"].str.starts_with("not run").all()


def test_dataset_s_own_split_files_when_present(ml100k_data):
    if not (ML100K / "ub.base").exists():
        pytest.skip(f"{ML100K} has no ub.base/ub.test (only u.data): the split files are tested on a generated copy above")
    metrics = compare_methods(ML100K, Settings(), split="ub")
    assert value(metrics, "als (defaults)", "ndcg", 10) > value(metrics, "popularity", "ndcg", 10)


def test_split_option_fails_clearly_without_split_files(ml100k_data, tmp_path: Path):
    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "u.data").symlink_to(ML100K / "u.data")
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--data", str(tmp_path), "--split", "ub"])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "ub.base and ub.test" in output and str(tmp_path) in output and "--split random" in output
    assert "Traceback" not in output
    bad = runner.invoke(app, ["eval", "--data", str(tmp_path), "--split", "uc"])
    unboxed = " ".join(bad.output.replace("│", " ").split())
    assert bad.exit_code == 2 and "'uc' is not one of 'random', 'ua', 'ub'" in unboxed


def test_eval_command_on_a_fixed_split(split_dir, tmp_path: Path):
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["eval", "--data", str(split_dir), "--split", "ua", "--json", str(tmp_path / "ua.json")])
    assert result.exit_code == 0, result.output
    assert "(ua split)" in result.output
    protocol = json.loads((tmp_path / "ua.json").read_text())["protocol"]
    assert protocol["split"].startswith("MovieLens ua.base / ua.test") and "ua.base" in protocol["seen_filter"]


# ---------------------------------------------------------------- the Prefect flow


@pytest.mark.usefixtures("prefect_server")
def test_evaluate_flow_creates_a_markdown_artifact(tmp_path: Path, monkeypatch):
    from prefect.client.orchestration import get_client

    from flows.evaluate import evaluate_flow
    from flows.parameters import EvalParameters

    for name, size in {"RECS_GEN_USERS": 120, "RECS_GEN_ITEMS": 200, "RECS_GEN_RATINGS": 6000}.items():
        monkeypatch.setenv(name, str(size))
    rows = evaluate_flow(EvalParameters(json_file=tmp_path / "m.json", plot=tmp_path / "m.png"))
    assert {r["method"] for r in rows} == set(NO_LLM)
    assert (tmp_path / "m.json").stat().st_size > 0 and (tmp_path / "m.png").read_bytes().startswith(b"\x89PNG")
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.key == "recs-evaluation"]
    assert artifacts and artifacts[-1].type == "markdown"
    markdown = max(artifacts, key=lambda a: a.created).data
    assert "# Evaluation: built-in dataset (random split" in markdown
    assert "| popularity |" in markdown and "ndcg@10" in markdown
    assert "- als + llm ranker: not run: no LLM endpoint configured" in markdown
    assert "- als + llm hybrid: not run: no LLM endpoint configured" in markdown


# ---------------------------------------------------------------- LLM rows against a local endpoint

KEY = "sk-eval-SECRET-93be"
SMALL = {"RECS_GEN_USERS": "120", "RECS_GEN_ITEMS": "200", "RECS_GEN_RATINGS": "6000"}


@pytest.fixture
def llm_env(monkeypatch):
    """The built-in generated dataset (small) and an LLM endpoint on 127.0.0.1 (tests/llm_server.py)."""
    from llm_server import OpenAICompatibleServer

    from tasks.llm_client import reset_shared_state

    def start(**server_options):
        server = OpenAICompatibleServer(**server_options).start()
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        return server

    for name, size in SMALL.items():
        monkeypatch.setenv(name, size)
    for name, setting in {"OPENAI_API_KEY": KEY, "RECS_LLM_SHARED_LIMIT": "local", "RECS_LLM_RPM": "100000", "RECS_LLM_TPM": "100000000",
                          "RECS_LLM_BACKOFF_SECONDS": "0.01", "RECS_LLM_DEADLINE_SECONDS": "1", "RECS_LLM_TIMEOUT": "1"}.items():
        monkeypatch.setenv(name, setting)
    reset_shared_state()
    servers = []
    yield lambda **options: servers.append(start(**options)) or servers[-1]
    for server in servers:
        server.stop()
    reset_shared_state()


def test_llm_rows_run_on_a_seeded_subset_next_to_als_on_the_same_users(llm_env):
    server = llm_env()  # the default brain reverses the candidates: it never sees the test set
    settings = Settings()
    assert settings.llm_base_url == server.base_url
    data = load_dataset(None, settings)
    metrics = compare_methods(None, settings, interactions=data, llm_users=25)
    subset_rows = metrics.filter(pl.col("method").is_in([LLM_BASELINE, *LLM_METHODS]))
    assert subset_rows.height == (1 + len(LLM_METHODS)) * len(METRICS) * len(CUTOFFS)
    gated = subset_rows.filter(method="als + llm gated hybrid")
    assert (subset_rows.filter(method=LLM_BASELINE)["status"] == "ok").all()
    modes = subset_rows.filter(pl.col("method").is_in(LLM_METHODS) & (pl.col("method") != "als + llm gated hybrid"))
    # every mode's explanations are measured on its own lists; the brain cites the first liked item (the evidence
    # of some candidates, not of all): some of its citations are among the ALS top contributors, not all
    faithfulness = modes["status"].str.extract(r"^ok; explanations: \d+% distinct texts, [\d.]+ history items cited per user, "
                                               r"(\d+)% of [\d,]+ LLM citations among the ALS top contributors$").cast(pl.Int64)
    assert faithfulness.null_count() == 0, modes["status"].unique().to_list()
    assert ((0 < faithfulness) & (faithfulness < 100)).all(), faithfulness.unique().to_list()
    assert (gated["status"] == "ok; gate chose on the other half: als (gate closed), als (gate closed)").all()
    assert gated.sort("metric", "k")["value"].to_list() == subset_rows.filter(method=LLM_BASELINE).sort("metric", "k")["value"].to_list(), \
        "a brain that reverses ALS keeps the gate closed: the gated hybrid is the ALS order"
    assert (subset_rows["users"] == 25).all()
    assert subset_rows["value"].null_count() == 0
    bounded = subset_rows.filter(pl.col("metric") != "dcg")["value"]
    assert ((bounded >= 0) & (bounded <= 1)).all() and (subset_rows["value"] >= 0).all()
    assert ((subset_rows["ci_low"] <= subset_rows["value"]) & (subset_rows["value"] <= subset_rows["ci_high"])).all()
    # per subset user: the plain prompt (the hybrid's identical prompts and the first permutation come from
    # the cache), the rationale-first prompt, and two more permutations
    assert server.count() == 25 * 4
    assert metrics.filter(method="als (defaults)")["users"][0] > 25

    # the subset ALS row is the defaults model's metrics recomputed over exactly those users
    holdout = split_holdout(data.likes, data.seen, settings.test_fraction, 42)
    positions = llm_subset(np.arange(len(holdout.users)), 25, 42)
    hits = hit_matrix(als_topn(fit(holdout, settings), holdout, N_CANDIDATES)[:, : max(CUTOFFS)], holdout.test[holdout.users])
    expected = per_user_metrics(hits[positions], holdout.n_relevant[positions])
    for (metric, k), per_user in expected.items():
        assert value(metrics, LLM_BASELINE, metric, k) == pytest.approx(per_user.mean())
    # reversing 30 candidates and keeping 20 is not ALS order: the LLM rows were really computed
    assert value(metrics, "als + llm ranker", "ndcg", 10) != pytest.approx(value(metrics, LLM_BASELINE, "ndcg", 10))

    import io

    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=220).print(render_table(metrics))
    assert "als + llm ranker (25 users)" in out.getvalue() and "not run" not in out.getvalue()


def test_llm_rows_failing_endpoint_shows_the_reason_never_values(llm_env):
    from llm_server import server_error

    server = llm_env(default_brain=server_error(500))
    metrics = compare_methods(None, Settings(), llm_users=3)
    llm = metrics.filter(pl.col("method").is_in(LLM_METHODS))
    assert llm.height == len(LLM_METHODS) * len(METRICS) * len(CUTOFFS) and llm["value"].null_count() == llm.height
    assert llm["status"].str.starts_with("failed: all 3 users fell back to ALS order (llm").all()
    assert llm["status"].str.contains("HTTP 500").all(), "the reason names the endpoint's answer"
    assert not llm["status"].str.contains(KEY).any() and server.count() > 0
    assert metrics.filter(method=LLM_BASELINE)["value"].null_count() == 0, "the ALS side is still measured"
