"""Assent from Python, end to end, with no collector needed: a transport written in
Python prints each upload instead of sending it. Run: python bindings/python/examples/quickstart.py"""
import gzip
import json
import tempfile

import assent_core as assent


class PrintingTransport(assent.HttpTransport):
    def post(self, request):
        body = request.body
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        batch = json.loads(body)
        print(f"POST {request.url}: {len(batch['batch'])} events, {len(batch['consent'])} consent records")
        for event in batch["batch"]:
            print(f"  {event['type']:8} {event.get('event') or event.get('name') or ''} purpose={event['purpose']}")
        answer = {"accepted": len(batch["batch"]), "duplicates": 0, "rejected": []}
        return assent.HttpResponse(status=200, retry_after=None, body=json.dumps(answer).encode())


config = assent.ClientConfig(
    collector_url="https://collector.example.com",
    write_key="WRITE_KEY",
    storage_dir=tempfile.mkdtemp(),
    app_id="com.example.python",
    policy_version="2026-01",
    user_id_pepper="a-pepper-of-at-least-16-bytes",
)
client = assent.AssentClient.with_transport(config, PrintingTransport())
print("needs prompt:", client.consent().needs_prompt)
print("track before consent ->", client.track("App Opened", "{}", None))
client.set_consent({"analytics": True}, "custom")
client.identify("alice@example.com", json.dumps({"plan": "pro"}))
print("track after consent  ->", client.track("App Opened", json.dumps({"build": 42}), None))
print("advertising (denied) ->", client.track("Ad Shown", "{}", "advertising"))
try:
    client.track("Oops", "{}", "telepathy")
except assent.AssentError.InvalidPurpose:
    print("unknown purpose -> AssentError.InvalidPurpose")
print("flush:", client.flush())
client.shutdown()
