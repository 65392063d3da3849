// Segment's own Node library (@segment/analytics-node, from npm), pointed at the
// collector with its `host` option: consented events land in the store.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Analytics } from "@segment/analytics-node";
import { startCollector as start } from "./collector.mjs";

const WRITE_KEY = "wk_segment_node_test_key_Fi4Oq7Sn1Dv8Lh";
const ADMIN = "adm_segment_node_test_token_Xa6Bc3Ge9T";

const startCollector = () => start({ writeKey: WRITE_KEY, admin: ADMIN });

const call = (url, method, p, token, body) =>
  fetch(`${url}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });

test("events from @segment/analytics-node land after consent", async () => {
  const { url, child } = await startCollector();
  try {
    const consent = await call(url, "POST", "/v1/consent", WRITE_KEY, {
      consentId: "node-c1", subjectId: "node-visitor", purposes: { analytics: true },
      policyVersion: "2026-01", method: "custom", source: "api", timestamp: "2020-01-01T00:00:00Z",
    });
    assert.equal(consent.status, 201);

    const analytics = new Analytics({ writeKey: WRITE_KEY, host: url, flushAt: 10, maxRetries: 1 });
    const errors = [];
    analytics.on("error", (e) => errors.push(e));
    analytics.track({ anonymousId: "node-visitor", event: "Signed Up", properties: { plan: "pro" } });
    analytics.identify({ anonymousId: "node-visitor", userId: "node-user", traits: { plan: "pro" } });
    analytics.track({ anonymousId: "node-stranger", event: "Signed Up" });
    await analytics.closeAndFlush({ timeout: 10000 });
    assert.deepEqual(errors, []);

    const held = await (await call(url, "GET", "/v1/subjects/node-visitor", ADMIN)).json();
    const types = held.events.map((e) => e.type).sort();
    assert.deepEqual(types, ["identify", "track"]);
    const track = held.events.find((e) => e.type === "track");
    assert.equal(track.event, "Signed Up");
    assert.match(track.context.library.name, /analytics-node/);
    const stranger = await (await call(url, "GET", "/v1/subjects/node-stranger", ADMIN)).json();
    assert.deepEqual(stranger.events, []);
  } finally {
    child.kill();
  }
});
