"""The JSON Schema agrees with the golden fixtures, and refuses what the protocol refuses."""
import copy
import json
import pathlib

import jsonschema
import pytest

HERE = pathlib.Path(__file__).resolve().parent.parent
SCHEMA = json.loads((HERE / "schema" / "assent-v1.schema.json").read_text())
jsonschema.Draft202012Validator.check_schema(SCHEMA)


def validator(definition):
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]})


def fixture(name):
    return json.loads((HERE / "fixtures" / name).read_text())


@pytest.mark.parametrize(
    "name,definition",
    [
        ("track.json", "event"),
        ("identify.json", "event"),
        ("screen.json", "event"),
        ("alias.json", "event"),
        ("group.json", "event"),
        ("segment-analytics-js-track.json", "event"),
        ("consent-record.json", "consentRecord"),
        ("consent-record-banner.json", "consentRecord"),
        ("batch.json", "batch"),
        ("batch-response.json", "batchResponse"),
    ],
)
def test_fixtures_follow_the_schema(name, definition):
    validator(definition).validate(fixture(name))


def broken(name, change):
    doc = copy.deepcopy(fixture(name))
    change(doc)
    return doc


@pytest.mark.parametrize(
    "definition,doc",
    [
        ("event", broken("track.json", lambda d: d.pop("event"))),
        ("event", broken("track.json", lambda d: d.update(purpose="telepathy"))),
        ("event", broken("track.json", lambda d: d.update(messageId="x" * 101))),
        ("event", broken("track.json", lambda d: (d.pop("anonymousId"), d.pop("userId")))),
        ("event", broken("track.json", lambda d: d.update(timestamp="yesterday"))),
        ("event", broken("track.json", lambda d: d.update(timestamp="0000-00-00T00:00:00Z"))),
        ("event", broken("track.json", lambda d: d.update(timestamp="2026-13-01T00:00:00Z"))),
        ("event", broken("track.json", lambda d: d.update(timestamp="2026-01-01T24:00:00Z"))),
        ("event", broken("track.json", lambda d: d.update(timestamp="2026-01-01T00:00:00+99:00"))),
        ("event", broken("track.json", lambda d: d.update(messageId="m\u0000"))),
        ("event", broken("track.json", lambda d: d.update(event="Bought\u001b"))),
        ("consentRecord", broken("consent-record.json", lambda d: d.update(policyVersion="1\u0000"))),
        ("event", broken("alias.json", lambda d: d.pop("previousId"))),
        ("consentRecord", broken("consent-record.json", lambda d: d.update(method="maybe"))),
        ("consentRecord", broken("consent-record.json", lambda d: d["purposes"].update(mind_reading=True))),
        ("consentRecord", broken("consent-record.json", lambda d: d.pop("policyVersion"))),
        ("consentRecord", broken("consent-record-banner.json", lambda d: d.update(noticeHash="abc"))),
        ("consentRecord", broken("consent-record-banner.json", lambda d: d["interaction"].update(layer="third"))),
        ("batchResponse", broken("batch-response.json", lambda d: d["rejected"][0].update(code="meh"))),
    ],
)
def test_the_schema_refuses_what_the_protocol_refuses(definition, doc):
    with pytest.raises(jsonschema.ValidationError):
        validator(definition).validate(doc)
