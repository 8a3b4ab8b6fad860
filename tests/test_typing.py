"""Types reach users: ``mypy --strict`` checks a user's program against the public names."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).resolve().parents[1] / ".ci" / "typing"
EXPECT = re.compile(r"#\s*expect:\s*([a-z][a-z-]*)$")
REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


def _mypy(tmp_path: Path, *files: Path) -> list[tuple[str, int, str]]:
    """Run mypy --strict from an empty folder (so it sees the installed packages); its errors."""
    pytest.importorskip("mypy", reason="mypy is not installed")
    config = tmp_path / "mypy.ini"
    # The library's own errors are not the user's (mypy is silent on installed
    # packages anyway): its own mypy run checks them, with its configuration.
    config.write_text("[mypy]\n[mypy-tracker.*,consumers.*]\nignore_errors = True\n",
                      encoding="utf-8")
    env = dict(os.environ)
    root = Path(importlib.import_module("tracker").__file__).resolve().parents[1]
    if root.name not in ("site-packages", "dist-packages"):
        # A source tree, or an editable install (whose import hook mypy cannot follow).
        env["MYPYPATH"] = str(root)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(config),
         "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", "--show-error-codes",
         *map(str, files)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    errors = []
    for line in done.stdout.splitlines():
        match = REPORTED.match(line)
        if match:
            errors.append((Path(match["file"]).name, int(match["line"]), match["code"]))
        else:
            assert ": note: " in line, line
    return errors


def _expected(program: Path) -> list[tuple[str, int, str]]:
    lines = program.read_text(encoding="utf-8").splitlines()
    return [(program.name, number, match[1])
            for number, text in enumerate(lines, 1) if (match := EXPECT.search(text))]


def test_a_user_program_passes_and_every_wrong_call_is_reported(tmp_path):
    good, wrong = PROGRAMS / "user_program.py", PROGRAMS / "wrong_calls.py"
    expected = _expected(wrong)
    assert len(expected) >= 5
    assert sorted(_mypy(tmp_path, good, wrong)) == sorted(expected)
