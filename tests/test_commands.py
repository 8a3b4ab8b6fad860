"""The console commands: declared in pyproject.toml, resolvable, and --help shows defaults."""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumers.cli import build_parser, replay_main, worker_main
from consumers.endpoints import REGIONS

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "tracking-collector": "consumers.collector:main",
    "tracking-replay": "consumers.cli:replay_main",
    "tracking-worker": "consumers.cli:worker_main",
}


def _scripts() -> dict[str, str]:
    """The console commands: pyproject.toml's in a checkout, the installed package's elsewhere."""
    if not (ROOT / "pyproject.toml").exists():
        from importlib.metadata import distribution

        points = distribution("tracking-toolkit").entry_points
        return {p.name: p.value for p in points if p.group == "console_scripts"}
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs tomli")
    with open(ROOT / "pyproject.toml", "rb") as f:
        scripts: dict[str, str] = tomllib.load(f)["project"]["scripts"]
    return scripts


def test_console_commands_are_declared_and_resolve_to_argumentless_mains() -> None:
    scripts = _scripts()
    assert scripts == COMMANDS
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        func = getattr(importlib.import_module(module), attr)
        assert callable(func), name
        inspect.signature(func).bind()  # a console script calls it with no arguments


@pytest.mark.parametrize(("main", "prog"), [(replay_main, "tracking-replay"),
                                            (worker_main, "tracking-worker")])
def test_each_command_has_its_own_name_in_help(main: Any, prog: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")


def _option_blocks(help_text: str) -> dict[str, str]:
    """``--option`` -> its help block, from argparse's "options:" section."""
    section = re.split(r"^(?:options|optional arguments):\n", help_text, flags=re.M)[1]
    section = section.split("\n\n")[0]
    blocks: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        m = re.match(r"  (-[-\w]+)", line)
        if m:
            current = m.group(1)
            blocks[current] = line
        elif current is not None:
            blocks[current] += " " + line.strip()
    return blocks


def test_worker_help_shows_a_default_for_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "consumers", "worker", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
             "REDIS_URL": "redis://:hunter2@example:6379/0"},
    )
    assert done.returncode == 0, done.stderr
    blocks = _option_blocks(done.stdout)
    parser = _subcommand("worker")
    options = {a.option_strings[-1] for a in parser._actions if a.option_strings} - {"--help"}
    assert options <= set(blocks), sorted(options - set(blocks))
    missing = [o for o in sorted(options) if "(default:" not in blocks[o]]
    assert not missing, missing
    assert "hunter2" not in done.stdout  # $REDIS_URL may hold a password
    assert "exit status:" in done.stdout


def _subcommand(name: str) -> argparse.ArgumentParser:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            parser: argparse.ArgumentParser = action.choices[name]
            return parser
    raise AssertionError("no subcommands")


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def test_region_and_api_host_agree_between_replay_and_worker() -> None:
    replay, worker = _subcommand("replay"), _subcommand("worker")
    for parser in (replay, worker):
        assert list(_option(parser, "--region").choices or ()) == sorted(REGIONS)
        assert _option(parser, "--api-host").metavar == "URL"
