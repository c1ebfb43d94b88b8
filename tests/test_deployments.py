"""deployments.yaml against a real Prefect server: deploy, start a run the way the UI does, let a worker run it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.states import Scheduled
from prefect.settings import PREFECT_API_URL, temporary_settings

from conftest import SMALL
from tasks.publish import partition_dir

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"Prefect server at {url} did not become healthy")


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A real `prefect server start` on 127.0.0.1 with a temporary home; yields (api_url, client env)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-server-home"))
    env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] = "2"  # the real scheduler service, looping faster
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(api)
        yield api, env | {"PREFECT_API_URL": api}
    finally:
        server.terminate()
        server.wait(timeout=30)


def prefect_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_deployments_run_on_schedule_and_from_the_ui_form_publish_and_leave_artifacts(prefect_api, tmp_path):
    api, env = prefect_api
    prefect_cli(env, "work-pool", "create", "recs-process", "--type", "process")
    prefect_cli(env, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments.yaml")

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("nightly-recs/nightly")
        manual = client.read_deployment_by_name("nightly-recs/manual")
        assert nightly.schedules and nightly.schedules[0].schedule.cron == "0 2 * * *"
        form = manual.parameter_openapi_schema["definitions"]["RunParameters"]["properties"]
        assert all(field.get("description") for field in form.values()), "every form field is described"
        run = client.create_flow_run_from_deployment(
            manual.id, parameters={"params": {"run_date": "2026-11-20", "home": str(tmp_path)}}
        )
        evaluation = client.read_deployment_by_name("evaluate-recs/on-demand")
        eval_form = evaluation.parameter_openapi_schema["definitions"]["EvalParameters"]["properties"]
        assert eval_form["split"]["enum"] == ["random", "ua", "ub"] and eval_form["sample_users"]["type"] == "integer"
        eval_run = client.create_flow_run_from_deployment(
            evaluation.id, parameters={"params": {"json_file": str(tmp_path / "eval.json")}}
        )

        scheduled = due_now(client, wait_for_scheduled_runs(client, nightly.id))

    nightly_home = tmp_path / "nightly-home"
    worker_env = env | {f"RECS_{k.upper()}": str(v) for k, v in SMALL.items()} | {"RECS_HOME": str(nightly_home)}
    prefect_cli(worker_env, "worker", "start", "--pool", "recs-process", "--run-once")

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        finished, eval_finished = client.read_flow_run(run.id), client.read_flow_run(eval_run.id)
        scheduled_finished = client.read_flow_run(scheduled.id)
        artifacts = {a.key for a in client.read_artifacts() if a.flow_run_id == run.id}
        eval_artifacts = {a.key for a in client.read_artifacts() if a.flow_run_id == eval_run.id}
    assert finished.state.is_completed(), finished.state
    assert eval_finished.state.is_completed(), eval_finished.state
    assert eval_artifacts == {"recs-evaluation"}
    methods = {row["method"] for row in json.loads((tmp_path / "eval.json").read_text())["rows"] if row["value"] is not None}
    assert {"popularity", "als (defaults)"} <= methods
    assert (partition_dir(tmp_path / "recommendations", date(2026, 11, 20)) / "data.parquet").exists()
    assert {"recs-2026-11-20-summary", "recs-2026-11-20-model", "recs-2026-11-20-sample", "recs-2026-11-20-report"} <= artifacts
    assert scheduled_finished.state.is_completed(), scheduled_finished.state
    assert (partition_dir(nightly_home / "recommendations", date.today()) / "data.parquet").exists()


def wait_for_scheduled_runs(client, deployment_id, seconds: float = 90) -> list:
    """The runs Prefect's scheduler service created for the deployment's cron (it needs sqlalchemy < 2.1)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
        )
        if runs:
            return runs
        time.sleep(1)
    raise AssertionError(f"the scheduler created no scheduled run of the nightly deployment within {seconds} s")


def due_now(client, runs: list):
    """The earliest scheduler-created run, moved to now so a worker picks it up (as at 02:00)."""
    run = min(runs, key=lambda r: r.expected_start_time)
    assert run.auto_scheduled, "created by the scheduler, not by hand"
    assert run.expected_start_time.astimezone(ZoneInfo("Europe/Berlin")).hour == 2, "at 02:00 Berlin time"
    client.set_flow_run_state(run.id, Scheduled(scheduled_time=datetime.now(timezone.utc)), force=True)
    return run


class Receiver(ThreadingHTTPServer):
    """A local HTTP endpoint that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


def test_a_failed_nightly_run_reaches_the_notification_block_of_the_repo_automation(prefect_api, tmp_path):
    api, env = prefect_api
    receiver = Receiver()
    try:
        with temporary_settings({PREFECT_API_URL: api}):
            block_id = CustomWebhookNotificationBlock(
                name="recs-alerts", url=receiver.url, json_data={"subject": "{{subject}}", "body": "{{body}}"}
            ).save("recs-alerts")
        automation = (REPO / "automations" / "nightly-failed.yaml").read_text()
        filled = tmp_path / "nightly-failed.yaml"
        filled.write_text(automation.replace("00000000-0000-0000-0000-000000000000", str(block_id)))
        assert "Created automation 'nightly-recs failed'" in prefect_cli(env, "automation", "create", "--from-file", str(filled))

        # in a process of its own: a flow run in this one would leave Prefect's events worker bound to this server
        failed = subprocess.run([sys.executable, "-m", "flows.nightly"], cwd=REPO, capture_output=True, text=True, timeout=300,
                                env=env | {"RECS_HOME": str(tmp_path / "home"), "RECS_DATA": str(tmp_path / "missing.csv")})  # fmt: skip
        assert failed.returncode != 0 and "missing.csv does not exist" in failed.stderr + failed.stdout
        deadline = time.monotonic() + 90
        while not receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        receiver.shutdown()
    assert len(receiver.bodies) == 1, "one notification for one failed run"
    alert = receiver.bodies[0]
    assert alert["subject"].startswith("nightly-recs ") and alert["subject"].endswith(": Failed")
    assert "ended Failed: " in alert["body"] and "missing.csv" in alert["body"], alert["body"]
