"""Find and run the code blocks of the README and the docs pages, as the docs tests do.

The convention every page follows:

* every fenced block tagged ``python`` runs; the blocks of one page run in
  order in one fresh Python process, so later blocks may use names from
  earlier ones;
* every fenced block tagged ``console`` runs its ``$ `` lines (a line ending
  in ``\\`` continues on the next) with bash, in order with the page's
  Python blocks; the other lines are the output shown, not checked;
* a block whose preceding non-blank line is ``<!-- docs: no-run (reason) -->``
  is skipped;
* a page with the line ``<!-- docs: needs redis -->`` runs with ``REDIS_URL``
  naming a fresh ``redis-server`` (skipped, saying so, where there is none);
* the current directory is a fresh temporary directory, ``python`` and
  ``python3`` are the interpreter running the tests, and
  ``TRACKING_TOOLKIT_LOCAL_COLLECTOR`` names a local collector, so code
  written for ``region="eu"`` or PostHog's default host reaches it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple, Optional

ROOT = Path(__file__).resolve().parent.parent
NO_RUN = re.compile(r"^<!--\s*docs:\s*no-run\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
NEEDS_REDIS = re.compile(r"^<!--\s*docs:\s*needs\s+redis\s*-->\s*$", re.M)
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
RUN_LANGUAGES = ("python", "console")


class Block(NamedTuple):
    language: str
    line: int  # of the first line of code, 1-based
    code: str
    skip: Optional[str]  # the no-run reason, or None


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/ (so new pages are covered)."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return [p for p in found if p.is_file()]


def blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text`` tagged python or console, in order."""
    lines = text.splitlines()
    found: list[Block] = []
    previous = ""
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = (opening["info"].strip().split() or [""])[0].lower()
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        start = i - len(body) + 1
        if language in RUN_LANGUAGES:
            skip = NO_RUN.match(previous)
            found.append(Block(language, start, "\n".join(body) + "\n",
                               skip["reason"] if skip else None))
        previous = fence
        i += 1
    return found


def commands(console: str) -> list[str]:
    """The ``$ `` commands of a console block, continuation lines joined."""
    result: list[str] = []
    current: Optional[str] = None
    for line in console.splitlines():
        if current is not None:
            current += "\n" + line
        elif line.startswith("$ "):
            current = line[2:]
        else:
            continue
        if not current.endswith("\\"):
            result.append(current)
            current = None
    if current is not None:
        result.append(current)
    return result


_DRIVER = r'''
import json, subprocess, sys, types

def run(steps):
    # the page's own __main__: its functions pickle by name (multiprocessing), and it
    # sees none of this driver's names
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    for language, path, line, code in steps:
        if language == "python":
            exec(compile("\n" * (line - 1) + code, path, "exec"), main.__dict__)
            continue
        for command in code:
            print(f"$ {command}", flush=True)
            done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command])
            if done.returncode:
                sys.exit(f"{path}:{line}: the command {command!r} exited {done.returncode}")

with open(sys.argv[1], encoding="utf-8") as f:
    run(json.load(f))
'''


def needs_redis(page: Path) -> bool:
    """Whether the page asks for a Redis server."""
    return bool(NEEDS_REDIS.search(page.read_text(encoding="utf-8")))


def run_page(page: Path, collector_url: str, workdir: Path, timeout: float = 180,
             extra_env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    """Run every block of ``page`` (as the convention says) in ``workdir``; the process's result."""
    steps = []
    for block in blocks(page.read_text(encoding="utf-8")):
        if block.skip is not None:
            continue
        code = block.code if block.language == "python" else commands(block.code)
        steps.append((block.language, str(page), block.line, code))
    bin_dir = workdir.parent / f"{workdir.name}-bin"  # outside workdir: the page sees its own files
    bin_dir.mkdir(exist_ok=True)
    steps_file = bin_dir / "steps.json"
    steps_file.write_text(json.dumps(steps), encoding="utf-8")
    for name in ("python", "python3"):
        # a script, not a symlink: a venv's interpreter must stay in its venv
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
    env = {
        **os.environ,
        "TRACKING_TOOLKIT_LOCAL_COLLECTOR": collector_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-c", _DRIVER, str(steps_file)], cwd=workdir, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False,
    )
