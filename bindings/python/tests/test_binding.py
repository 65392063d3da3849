"""The Python binding drives the real assent-core library end to end: calls cross the
boundary, errors arrive as exceptions, uploads reach a real HTTP server."""
import base64
import hashlib
import hmac
import json
import pathlib
import unicodedata

import jsonschema
import pytest

import assent_core
from assent_core import AssentClient, AssentError, HttpResponse, HttpTransport

from conftest import make_config

PROTOCOL = pathlib.Path(__file__).resolve().parents[3] / "protocol"
VECTORS = PROTOCOL / "test-vectors" / "user-id-hmac.json"


def test_published_user_id_vectors_match_the_binding_and_an_independent_hmac():
    vectors = json.loads(VECTORS.read_text())["vectors"]
    assert len(vectors) >= 5
    for v in vectors:
        assert assent_core.normalize_user_id(v["input"]) == v["normalized"]
        assert assent_core.pseudonymize_user_id(v["pepper"], v["input"]) == v["output"]
        normalized = unicodedata.normalize("NFC", v["input"].strip())
        normalized = "".join(c.lower() if "A" <= c <= "Z" else c for c in normalized)
        expected = hmac.new(v["pepper"].encode(), normalized.encode(), hashlib.sha256).hexdigest()
        assert expected == v["output"]


def test_consent_gates_tracking_and_errors_are_exceptions(new_client):
    client = new_client()
    state = client.consent()
    assert state.needs_prompt
    assert state.purposes == {"necessary": True, "analytics": False, "personalization": False, "advertising": False}
    assert client.track("Viewed", "{}", None) is False
    assert client.queued_count() == 0
    with pytest.raises(AssentError.InvalidPurpose):
        client.track("Viewed", "{}", "telepathy")
    with pytest.raises(AssentError.InvalidPurpose):
        client.set_consent({"telepathy": True}, "custom")
    with pytest.raises(AssentError.InvalidMethod):
        client.set_consent({}, "maybe")
    with pytest.raises(AssentError.InvalidJson):
        client.track("Viewed", "[1, 2]", None)
    client.set_consent({"analytics": True}, "custom")
    assert client.consent().needs_prompt is False
    assert client.track("Viewed", json.dumps({"page": 3}), None) is True
    assert client.queued_count() == 2  # the event and the consent record


def test_bad_configuration_raises(tmp_path):
    with pytest.raises(AssentError.InvalidArgument):
        AssentClient(make_config("not-a-url", tmp_path))
    with pytest.raises(AssentError.InvalidArgument):
        AssentClient(make_config("http://127.0.0.1:9", tmp_path, user_id_pepper="short"))


def test_track_and_flush_reach_a_real_server(recorder, new_client):
    client = new_client(user_id_pepper="assent-test-pepper-0001")
    client.set_consent({}, "accept_all")
    assert client.identify("alice@example.com", json.dumps({"plan": "pro"}))
    assert client.track("Order Completed", json.dumps({"total": 42.5}), "advertising")
    assert client.screen("Checkout", "")
    result = client.flush()
    assert (result.accepted, result.duplicates, result.rejected, result.remaining) == (3, 0, 0, 0)

    request = recorder.requests[0]
    assert request["path"] == "/v1/batch"
    assert request["auth"] == "Basic " + base64.b64encode(b"py-write-key:").decode()
    events = recorder.events()
    assert [e["type"] for e in events] == ["identify", "track", "screen"]
    pid = client.pseudonymous_id()
    assert all(e["anonymousId"] == pid for e in events)
    peppered = "1463b0a64dbadf0dab88b750e289e87e41603a8184375dd97a0c1f1a901af17c"
    assert all(e["userId"] == peppered for e in events)
    assert events[1]["purpose"] == "advertising"
    assert events[1]["properties"] == {"total": 42.5}
    assert "alice" not in json.dumps(recorder.requests)
    [record] = recorder.consent()
    assert record["method"] == "accept_all" and record["source"] == "sdk"
    assert record["subjectId"] == pid

    # What the SDK sends follows the published JSON Schema.
    schema = json.loads((PROTOCOL / "schema" / "assent-v1.schema.json").read_text())
    defs = schema["$defs"]
    jsonschema.validate(request["body"], {"$ref": "#/$defs/batch", "$defs": defs})
    for event in events:
        jsonschema.validate(event, {"$ref": "#/$defs/event", "$defs": defs})


def test_recommendation_feedback_carries_the_lists_rec_id(recorder, new_client):
    client = new_client()
    client.set_consent({"analytics": True}, "custom")
    rec_id = "home.3." + "0123456789abcdef" * 2  # the recId of a collector's answer
    assert client.recommendation_viewed(rec_id, json.dumps({"slot": "home"}))
    assert client.recommendation_clicked(rec_id, "book-7", "")
    with pytest.raises(AssentError.InvalidArgument):
        client.recommendation_viewed("home.3", "")
    client.flush()
    assert [(e["event"], e["properties"]) for e in recorder.events()] == [
        ("Recommendation Viewed", {"slot": "home", "rec_id": rec_id}),
        ("Recommendation Clicked", {"rec_id": rec_id, "item_id": "book-7"}),
    ]


def test_a_content_slot_name_is_checked_before_anything_is_sent(recorder, new_client):
    client = new_client()
    for name in ["../v1/flags", "", "Hero", "x" * 65]:
        with pytest.raises(AssentError.InvalidArgument):
            client.content(name)
    assert recorder.requests == []


def test_withdrawal_purges_and_ids_survive_restart(recorder, new_client, tmp_path):
    client = new_client()
    client.set_consent({"analytics": True, "personalization": True}, "custom")
    for _ in range(3):
        client.track("Recommended", "", "personalization")
    client.track("Viewed", "", None)
    client.set_consent({"personalization": False}, "withdraw")
    assert client.stats().purged == 3
    pid = client.pseudonymous_id()
    client.shutdown()
    with pytest.raises(AssentError.ShutDown):
        client.track("Late", "", None)

    again = new_client()
    assert again.pseudonymous_id() == pid
    assert again.consent().purposes["personalization"] is False
    assert again.consent().purposes["analytics"] is True
    again.flush()
    assert [e["event"] for e in recorder.events()] == ["Viewed"]
    assert [c["method"] for c in recorder.consent()] == ["custom", "withdraw"]
    again.reset()
    assert again.pseudonymous_id() != pid


def test_a_host_transport_written_in_python_carries_the_uploads(tmp_path):
    class Recording(HttpTransport):
        def __init__(self):
            self.requests = []
            self.fail = False

        def post(self, request):
            if self.fail:
                raise AssentError.Network("offline")
            self.requests.append(request)
            body = json.loads(request.body)
            answer = {"accepted": len(body["batch"]), "duplicates": 0, "rejected": []}
            return HttpResponse(status=200, retry_after=None, body=json.dumps(answer).encode())

    transport = Recording()
    client = AssentClient.with_transport(make_config("https://collector.invalid", tmp_path), transport)
    try:
        client.track("Login", "", "necessary")
        transport.fail = True
        with pytest.raises(AssentError.Network):
            client.flush()
        assert client.queued_count() == 1
        transport.fail = False
        assert client.flush().accepted == 1
        [request] = transport.requests
        assert request.url == "https://collector.invalid/v1/batch"
        assert request.headers["Content-Type"] == "application/json"
    finally:
        client.shutdown()
