"""What an installed copy holds and runs (.ci/wheel-check runs these against the wheel).

With ``TRACKING_TOOLKIT_INSTALLED=1`` (set by .ci/wheel-check) the packages
must come from site-packages, not from a source tree.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

PACKAGES = ("tracker", "consumers")
INSTALLED = os.environ.get("TRACKING_TOOLKIT_INSTALLED") == "1"


@pytest.mark.skipif(not INSTALLED, reason="only against an installed wheel (.ci/wheel-check)")
@pytest.mark.parametrize("package", PACKAGES)
def test_the_packages_come_from_site_packages(package):
    location = Path(importlib.import_module(package).__file__).resolve()
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert location.parent == site / package
    files = importlib.metadata.files("tracking-toolkit") or []
    assert f"{package}/__init__.py" in {str(f) for f in files}


@pytest.mark.parametrize("package", PACKAGES)
def test_the_typed_marker_ships(package):
    assert importlib.resources.files(package).joinpath("py.typed").is_file()


def test_the_version_is_one():
    import tracker

    if INSTALLED:
        assert importlib.metadata.version("tracking-toolkit") == tracker.__version__
    assert tracker.__version__.count(".") >= 2


@pytest.mark.parametrize("module", ["consumers", "consumers.collector"])
def test_commands_start_from_any_folder(module, tmp_path):
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:") and not done.stderr


def test_the_collector_subpackage_is_importable_from_the_public_name(tmp_path):
    code = "from consumers import Collector\nwith Collector() as c: print(c.url)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("http://127.0.0.1:")
