"""Shared fixtures: a real local collector on 127.0.0.1 for every HTTP test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.redis_server import redis_srv  # noqa: F401  (a fixture for the Redis tests)
from tests.small_disk import small_disk  # noqa: F401  (a fixture for full-disk tests)


@pytest.fixture(autouse=True)
def _own_default_spools(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Default spools (normally under the user's cache dir) in a folder of each test's own,
    so no test adopts what another left, and child processes inherit the same place."""
    monkeypatch.setenv("TRACKING_TOOLKIT_SPOOL_DIR", str(tmp_path_factory.mktemp("spools")))


@pytest.fixture
def collector() -> Iterator:
    """A fresh local collector, serving on a free port for one test."""
    from consumers.collector import Collector

    with Collector() as c:
        yield c


@pytest.fixture(params=["threaded", "asyncio"])
def any_collector(request: pytest.FixtureRequest) -> Iterator:
    """A local collector in each server mode, for one test each."""
    from consumers.collector import Collector

    with Collector(mode=request.param) as c:
        yield c


@pytest.fixture
def session() -> Iterator:
    """A keep-alive ``requests.Session`` for talking to the collector directly."""
    import requests

    with requests.Session() as s:
        yield s


@pytest.fixture
def front() -> Iterator[Callable[..., Any]]:
    """Makes :class:`tests.fronts.Front` servers (``front(answer, tls=None)``), closed after."""
    from tests.fronts import Front

    made: list[Front] = []

    def make(*args: Any, **kwargs: Any) -> Front:
        made.append(Front(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (skips without openssl)."""
    from tests.fronts import make_certificate

    return make_certificate(tmp_path_factory.mktemp("tls"))
