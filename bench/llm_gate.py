"""The nightly LLM gate on MovieLens 100k with brains that know the true ratings (not a test).

    .venv/bin/python bench/llm_gate.py [--users 943] [--gate-users 200] [--noise 0.5]

10 % of the likes are hidden from the pipeline (tests/hidden_likes.py). For each brain of
tests/llm_server.py (ranks by the true ratings with Gaussian noise; ranks worst first) one llm night
runs in process on a fresh home; printed: the gate's decision, NDCG@10 of the published lists and of
the ALS-only lists on the hidden likes, LLM calls (preflight, canary and ranking) and the gate and
rank stage seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from isolated_env import isolate_environment  # noqa: E402

isolate_environment("recs-bench-")

from flows.nightly import nightly_for  # noqa: E402
from flows.parameters import RunParameters  # noqa: E402
from hidden_likes import als_lists, hide_likes, ndcg, published  # noqa: E402
from llm_server import OpenAICompatibleServer, knows_ratings, worst_first  # noqa: E402

ML100K = Path(os.environ.get("ML100K_DIR") or ROOT.parent / "shared" / "data" / "ml-100k")
RUN_DATE = date(2026, 11, 23)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=None, help="MovieLens users 1..N (default: all)")
    parser.add_argument("--gate-users", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.5, help="sd of the noise on the true ratings")
    args = parser.parse_args()
    os.environ.update(OPENAI_API_KEY="bench", RECS_LLM_GATE="auto", RECS_GATE_USERS=str(args.gate_users),
                      RECS_LLM_SHARED_LIMIT="local", RECS_LLM_RPM="100000", RECS_LLM_TPM="100000000",
                      RECS_LLM_CONCURRENCY="8")
    with tempfile.TemporaryDirectory(prefix="recs-bench-gate-") as tmp:
        data = Path(tmp) / "data"
        hidden, truth = hide_likes(ML100K, data, 0.1, args.users)
        brains = {f"knows_ratings(noise {args.noise})": knows_ratings(truth, args.noise, seed=1), "worst_first": worst_first(truth)}
        for name, brain in brains.items():
            home = Path(tmp) / name
            with OpenAICompatibleServer(default_brain=brain) as server:
                os.environ["OPENAI_BASE_URL"] = server.base_url
                params = RunParameters(home=home, data=data, run_date=RUN_DATE, ranker="llm")
                summary = nightly_for(params.settings())(params)
                calls = server.count()
            lists = published(home, RUN_DATE).select("user_id", "rank", "item_id")
            seconds = summary["seconds"]
            print(f"{name}: {summary['llm_gate']}\n"
                  f"  published NDCG@10 on the hidden likes {ndcg(lists, hidden):.3f} vs ALS-only lists "
                  f"{ndcg(als_lists(home, RUN_DATE), hidden):.3f}; {summary['users']} users; {calls} LLM calls; "
                  f"llm gate {seconds['llm gate']:.1f} s, rank {seconds['rank']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
