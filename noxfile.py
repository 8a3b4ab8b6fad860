"""The test suite on every supported CPython this machine has.

``nox`` runs ``tests-3.9`` ... ``tests-3.13``; ``nox -s tests-3.12 -- tests/test_file.py``
runs one version on some tests.  A version that is not installed is skipped,
and nox says so with the reason; .ci/run prints which ran and which did not.

Interpreters are looked for under ``$PYENV_ROOT/versions``, then on ``PATH``
(pyenv's shims are left out: a shim for a version that is installed but not
selected answers "command not found" instead of running it).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

import nox

#: Keep in step with ``requires-python`` and the classifiers in pyproject.toml.
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = False
nox.options.reuse_venv = "yes"


def _works(executable: str, version: str) -> bool:
    try:
        done = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == version


def _find(version: str, path: str) -> str | None:
    """A real ``pythonX.Y`` for ``version``: pyenv's newest of that version, else on ``path``."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    pattern = os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")
    # plain X.Y.Z builds only: not 3.13.0t (free-threaded), nor 3.12-dev
    releases: dict[str, tuple[int, ...]] = {}
    for candidate in glob.glob(pattern):
        release = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", candidate.split(os.sep)[-3])
        if release:
            releases[candidate] = tuple(map(int, release.groups()))
    candidates = sorted(releases, key=releases.__getitem__, reverse=True)
    candidates.append(shutil.which(f"python{version}", path=path) or "")
    return next((c for c in candidates if c and _works(c, version)), None)


def _path_without_shims() -> str:
    return os.pathsep.join(
        part for part in os.environ.get("PATH", "").split(os.pathsep)
        if not part.rstrip("/").endswith("/shims")
    )


def _locate_interpreters() -> dict[str, str | None]:
    """Put each found interpreter's folder first on PATH, where nox looks for ``pythonX.Y``."""
    path = _path_without_shims()
    found = {version: _find(version, path) for version in PYTHONS}
    folders = [os.path.dirname(exe) for exe in found.values() if exe]
    os.environ["PATH"] = os.pathsep.join([*dict.fromkeys(folders), path])
    return found


#: The green lanes' interpreter: the caller's python3, found before PATH is changed below.
GREEN_PYTHON = os.environ.get("GREEN_PYTHON") or shutil.which("python3") or "python3"
FOUND = _locate_interpreters()
for _version, _exe in FOUND.items():
    nox.logger.logger.info(
        f"CPython {_version}: {_exe}" if _exe else
        f"CPython {_version}: not installed (looked under pyenv's versions and on PATH)"
    )


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite (or the tests given after ``--``) on one CPython."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs)


#: What the green lanes re-run: the background consumer, the PostHog client, forks, exit.
GREEN_TESTS = [
    "tests/test_background.py", "tests/test_background_http.py",
    "tests/test_background_promises.py", "tests/test_posthog_client.py",
    "tests/test_posthog_consumer.py", "tests/test_fork.py", "tests/test_logging_quiet.py",
    "tests/test_runtime.py",
]


@nox.session(venv_backend="none")
@nox.parametrize("library", ["gevent", "eventlet"])
def green(session: nox.Session, library: str) -> None:
    """Those tests in processes monkey-patched by gevent or eventlet before anything else runs.

    Runs on the caller's ``python3`` (or ``$GREEN_PYTHON``), with ``.[test]``
    installed.  ``tests/green/sitecustomize.py`` patches every Python process
    started with ``TRACKING_TOOLKIT_GREEN`` set, the test children included.
    """
    root = os.path.dirname(os.path.abspath(__file__))
    path = os.pathsep.join([os.path.join(root, "tests", "green"), root,
                            os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    session.run(
        GREEN_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        # plugins that break under monkey-patching, unused by these tests
        "-p", "no:anyio", "-p", "no:benchmark",
        "-p", "green_lane", *(session.posargs or GREEN_TESTS),
        env={"TRACKING_TOOLKIT_GREEN": library, "PYTHONPATH": path},
    )
