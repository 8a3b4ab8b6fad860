"""The threaded web-app demo, in one process and with forked workers (like gunicorn --preload)."""

from __future__ import annotations

import os

import pytest

from demo import web_app


def test_request_threads_share_one_tracker() -> None:
    result = web_app.run(120, 8)
    assert (result["ok"], result["events"], result["events_sent_twice"]) == (120, 120, 0)
    assert result["profile_updates"] == 40
    assert result["consumer"]["delivered"] == 160


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_workers_each_deliver_their_own_events_once() -> None:
    result = web_app.run(120, 8, workers=3)
    # every request's event and the parent's "Server started", each once
    assert (result["ok"], result["events"], result["events_sent_twice"]) == (120, 121, 0)
    assert result["profile_updates"] == 40
    assert result["consumer"]["delivered"] == 1  # the parent sent only its own
    assert result["client_connections"] >= 2  # workers did not borrow the parent's socket
