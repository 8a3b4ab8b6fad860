"""Public names: type checkers see what runs, no name is a module, imports stay cheap."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ("tracker", "consumers")


def _type_checking_imports(package: str) -> dict[str, str]:
    """Name -> module, from the ``if TYPE_CHECKING:`` block of ``package/__init__.py``."""
    source = Path(importlib.import_module(package).__file__).read_text(encoding="utf-8")
    names: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.dump(stmt)
                for alias in stmt.names:
                    assert alias.asname == alias.name, f"{alias.name} must be re-exported as itself"
                    names[alias.name] = stmt.module or ""
    return names


def _all_modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    return [info.name for info in pkgutil.walk_packages(root.__path__, f"{package}.")]


@pytest.mark.parametrize("package", PACKAGES)
def test_type_checkers_see_every_public_name_from_its_module(package):
    exports = importlib.import_module(package)._EXPORTS
    expected = {name: f"{package}.{module}" for name, module in exports.items()}
    assert _type_checking_imports(package) == expected


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_imports(package):
    for name in _all_modules(package):
        if name.startswith("consumers.redis") and importlib.util.find_spec("redis") is None:
            continue
        importlib.import_module(name)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_public_name_is_also_a_module(package):
    module_names = {name.rsplit(".", 1)[1] for name in _all_modules(package)}
    assert not module_names & set(importlib.import_module(package).__all__)


def test_replay_stays_the_function_after_its_module_is_imported():
    code = (
        "from consumers.replaying import ReplayResult\n"
        "from consumers import replay\n"
        "print(callable(replay), type(replay).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "function"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_and_a_wrong_one_says_so(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        getattr(module, name)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'Nope'"):
        module.Nope  # noqa: B018


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_packages_loads_no_dependency():
    loaded = _loaded_after("import tracker, consumers")
    heavy = {"requests", "attrs", "tenacity", "redis", "orjson",
             "consumers.consumer", "tracker.tracker"}
    assert not loaded & heavy


def test_the_redis_extra_loads_only_when_used():
    loaded = _loaded_after(
        "from consumers import BackgroundConsumer, BufferedConsumer, Collector, FileConsumer\n"
        "from consumers import replay\n"
        "from tracker import Tracker"
    )
    assert "requests" in loaded
    assert not {name for name in loaded if name.split(".")[0] == "redis"}


def test_editors_complete_members_of_public_names():
    jedi = pytest.importorskip("jedi", reason="jedi (an editor's completion engine) is missing")
    source = 'from tracker import Tracker\nTracker("token").'
    root = Path(importlib.import_module("tracker").__file__).parents[1]
    project = jedi.Project(str(root), sys_path=[str(root), *sys.path])
    completions = jedi.Script(source, project=project).complete(2, len('Tracker("token").'))
    assert {"track", "people", "groups", "alias"} <= {c.name for c in completions}
