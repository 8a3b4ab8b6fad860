"""``python -m consumers.collector`` as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from collector_messages import event, form

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mode", ["threaded", "asyncio"])
def test_cli_serves_until_terminated(mode):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "consumers.collector", "--port", str(port), "--mode", mode],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first
        url = f"http://127.0.0.1:{port}"
        assert requests.post(url + "/track", data=form([event()]), timeout=30).text == "1"
        stats = requests.get(url + "/_collector/stats", timeout=30).json()
        assert stats["endpoints"]["track"]["accepted"] == 1
        line = proc.stdout.readline()
        assert "POST /track -> 200" in line and "accepted=1" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["track"]["accepted"] == 1


def test_cli_stops_on_ctrl_c():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "consumers.collector", "--port", str(port), "--quiet"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert "listening" in proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
