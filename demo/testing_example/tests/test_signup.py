"""The example project's tests: they use the fixtures the package's pytest plugin provides."""

from signup import make_tracker, sign_up


def test_sign_up_tracks_the_plan(tracking_sink):
    sign_up(make_tracker(tracking_sink), "u1", "pro")

    tracking_sink.assert_tracked("Signed Up", distinct_id="u1", properties={"plan": "pro"})
    tracking_sink.assert_tracked(type="profile_update", properties={"$set": {"plan": "pro"}})


def test_nothing_is_tracked_before_sign_up(tracking_sink):
    make_tracker(tracking_sink)

    tracking_sink.assert_no_events()


def test_the_eu_tracker_delivers_to_the_local_collector(tracking_collector):
    sign_up(make_tracker(), "u2", "free")

    [event] = tracking_collector.unique("track")
    assert event["event"] == "Signed Up"
    assert event["properties"]["plan"] == "free"
    [update] = tracking_collector.unique("engage")
    assert update["$set"] == {"plan": "free"}


def test_a_refused_request_reaches_the_error_handler(tracking_collector):
    tracking_collector.fail_next(status=400, path="/track")

    assert make_tracker().track("u3", "Signed Up") is False
