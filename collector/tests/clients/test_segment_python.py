"""Segment's own Python library (segment-analytics-python, from PyPI), pointed at the
collector with its `host` option: consented events land in the store, others do not."""
import pytest
import segment.analytics as analytics

from collector import Collector, WRITE_KEY


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.stop()


def test_events_from_segment_python_land_after_consent(collector):
    collector.consent("py-visitor", {"analytics": True})
    analytics.write_key = WRITE_KEY
    analytics.host = collector.url
    analytics.sync_mode = True
    errors = []
    analytics.on_error = lambda error, items: errors.append(error)
    analytics.track(anonymous_id="py-visitor", event="Order Completed", properties={"total": 27.5})
    analytics.identify(anonymous_id="py-visitor", user_id="py-user", traits={"plan": "pro"})
    analytics.page(anonymous_id="py-visitor", name="Home")
    # No consent for this one: the collector refuses it (and Segment's library moves on).
    analytics.track(anonymous_id="py-stranger", event="Order Completed")
    analytics.flush()
    assert errors == []
    held = collector.subject("py-visitor")
    assert sorted(e["type"] for e in held["events"]) == ["identify", "page", "track"]
    track = next(e for e in held["events"] if e["type"] == "track")
    assert track["event"] == "Order Completed"
    assert track["properties"]["total"] == 27.5
    assert track["context"]["library"]["name"] == "analytics-python"
    assert track["anonymousId"].startswith("k1."), "stored pseudonymized"
    assert collector.subject("py-stranger")["events"] == []
