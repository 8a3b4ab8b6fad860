"""``python -m demo`` says what was served locally, what its numbers mean and where its log is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TRACKING_TOOLKIT_LOCAL_COLLECTOR", None)
    return subprocess.run([sys.executable, "-m", "demo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_demo_says_what_was_served_locally_and_keeps_its_log(tmp_path):
    done = _run("--log-dir", str(tmp_path / "logs"), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "api-eu.mixpanel.com: 3 request(s), served locally" in out
    assert "requests per host" not in out            # the old line that read as if sent for real
    assert re.search(r"sent=201 rejected=0 \(corrupt=0 refused=0\) torn=0", out)
    for meaning in ("sent: messages the collector confirmed", "torn:", "after deduplication"):
        assert meaning in out
    log = tmp_path / "logs" / "mixpanel.log"
    assert str(log) in out
    assert len(log.read_text(encoding="utf-8").splitlines()) == 201
    assert "demo/__main__.py" in out


def test_help_prints_the_options_and_runs_nothing(tmp_path):
    done = _run("--help", cwd=ROOT)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m demo")
    assert "--log-dir" in done.stdout and "local collector is listening" not in done.stdout
