"""python -m consumers replay: exit statuses, summary, progress bar, dry run (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from consumers.cli import consumer_kwargs_from_env, main
from consumers.file import FileConsumer

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-never-shown"


def event(n: int, *, time_ms: Optional[int] = None) -> str:
    return json.dumps({"event": "Tick", "properties": {
        "token": "tok", "distinct_id": f"u{n}",
        "time": time_ms if time_ms is not None else 1700000000000 + n,
        "$insert_id": f"id-{n}", "n": n}})


def write_log(path: Path, count: int, message_type: str = "event") -> None:
    with FileConsumer(path) as log:
        for n in range(count):
            log.send(message_type, event(n))


def run_cli(*args: str, env: Optional[dict[str, str]] = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MIXPANEL_")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "consumers", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def test_dry_run_counts_and_sends_nothing(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 40)
    # no collector, no credentials, an address nothing listens on: nothing may be sent
    proc = run_cli("replay", str(log), "--dry-run", "--api-host", "http://127.0.0.1:9")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"checked {log}: valid=40 rejected=0")
    assert proc.stdout.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.log"]


def test_dry_run_with_a_corrupt_line_exits_non_zero_naming_it(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 3)
    with open(log, "a") as f:
        f.write("{oops\n")
    proc = run_cli("replay", str(log), "--dry-run")
    assert proc.returncode == 1
    assert "valid=3 rejected=1 (corrupt=1" in proc.stdout
    assert "a.log:4" in proc.stderr


def test_missing_log_and_bad_usage(tmp_path: Path) -> None:
    assert run_cli("replay", str(tmp_path / "none.log"), "--dry-run").returncode == 4
    assert run_cli("replay", str(tmp_path / "none.log"), "--batch-size", "0").returncode == 2
    both = run_cli("replay", "x.log", "--region", "eu", "--api-host", "http://127.0.0.1:9")
    assert both.returncode == 2 and "not allowed with" in both.stderr
    assert run_cli("replay", "x.log", "--token", "abc").returncode == 2


def test_credentials_come_from_the_environment_only() -> None:
    kwargs = consumer_kwargs_from_env({
        "MIXPANEL_PROJECT_TOKEN": "tok", "MIXPANEL_API_SECRET": "api",
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": "sa", "MIXPANEL_SERVICE_ACCOUNT_SECRET": SECRET,
        "MIXPANEL_PROJECT_ID": "123"})
    assert kwargs == {"project_token": "tok", "api_secret": "api",
                      "service_account": ("sa", SECRET, "123")}
    with pytest.raises(ValueError, match="MIXPANEL_PROJECT_ID"):
        consumer_kwargs_from_env({"MIXPANEL_SERVICE_ACCOUNT_USERNAME": "sa",
                                  "MIXPANEL_SERVICE_ACCOUNT_SECRET": SECRET})
    assert consumer_kwargs_from_env({}) == {}


def test_main_returns_the_status_in_process(tmp_path: Path, capsys: Any) -> None:
    log = tmp_path / "a.log"
    write_log(log, 5)
    assert main(["replay", str(log), "--dry-run"]) == 0
    assert "valid=5" in capsys.readouterr().out


# -- against the local collector ----------------------------------------------------------



def test_replay_delivers_and_prints_one_summary_line(tmp_path: Path, collector: Any) -> None:
    log = tmp_path / "a.log"
    write_log(log, 1200)
    proc = run_cli("replay", str(log), "--api-host", collector.url, "--batch-size", "500")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"replayed {log}: sent=1200 rejected=0")
    assert proc.stdout.count("\n") == 1
    assert "\r" not in proc.stderr  # not a terminal: no progress bar
    assert len(collector.unique("track")) == 1200
    sizes = [r["n_records"] for r in collector.requests() if r["path"].startswith("/track")]
    assert sizes == [500, 500, 200]
    again = run_cli("replay", str(log), "--api-host", collector.url)
    assert again.returncode == 0 and "sent=0" in again.stdout
    assert len(collector.messages("track")) == 1200


def test_progress_bar_shows_events_rate_and_eta(tmp_path: Path, collector: Any) -> None:
    log = tmp_path / "a.log"
    write_log(log, 300)
    proc = run_cli("replay", str(log), "--api-host", collector.url, "--batch-size", "50",
                   "--progress", "always")
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.split("\r")[-1]
    assert "100%" in last and "300 events" in last and "events/s" in last and "ETA" in last


def test_refused_records_exit_1_with_rejects_file(tmp_path: Path, collector: Any) -> None:
    log = tmp_path / "imports.log"
    with FileConsumer(log) as f:
        for n in range(10):
            future = int(time.time() * 1000) + 86_400_000 * 30 if n == 4 else None
            f.send("import", event(n, time_ms=future))
    env = {"MIXPANEL_SERVICE_ACCOUNT_USERNAME": "sa", "MIXPANEL_SERVICE_ACCOUNT_SECRET": SECRET,
           "MIXPANEL_PROJECT_ID": "123"}
    proc = run_cli("replay", str(log), "--api-host", collector.url, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "sent=9 rejected=1 (corrupt=0 refused=1)" in proc.stdout
    rejects = [json.loads(x) for x in (tmp_path / "imports.log.rejects").read_text().splitlines()]
    assert len(rejects) == 1 and rejects[0]["line"] == 5 and rejects[0]["insert_id"] == "id-4"
    assert len(collector.unique("import")) == 9
    for text in (proc.stdout, proc.stderr, *(p.read_text() for p in tmp_path.iterdir())):
        assert SECRET not in text


def test_missing_import_credentials_exit_4_naming_the_variables_and_a_rerun_resumes(
    tmp_path: Path, collector: Any,
) -> None:
    log = tmp_path / "imports.log"
    write_log(log, 30, message_type="import")
    failed = run_cli("replay", str(log), "--api-host", collector.url, "--batch-size", "10",
                     env={"MIXPANEL_SERVICE_ACCOUNT_SECRET": ""})  # no credentials at all
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "STOPPED" in failed.stdout and "sent=0" in failed.stdout
    assert "MIXPANEL_SERVICE_ACCOUNT_USERNAME" in failed.stderr
    assert "MIXPANEL_API_SECRET" in failed.stderr
    assert "service_account=" not in failed.stderr and "Traceback" not in failed.stderr
    assert collector.requests() == []
    env = {"MIXPANEL_SERVICE_ACCOUNT_USERNAME": "sa", "MIXPANEL_SERVICE_ACCOUNT_SECRET": SECRET,
           "MIXPANEL_PROJECT_ID": "123"}
    ok = run_cli("replay", str(log), "--api-host", collector.url, "--batch-size", "10", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "sent=30" in ok.stdout and len(collector.unique("import")) == 30
    assert len(collector.messages("import")) == 30  # each sent once
    assert SECRET not in ok.stdout + ok.stderr
