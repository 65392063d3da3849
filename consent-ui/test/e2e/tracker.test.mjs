// The tracker's delivery guarantees and the clean-up after a refusal, in Chromium against
// the real collector: events sent when the page goes away, retried under the same
// messageId, one subject for events and consent, proof of the notice in the audit export,
// regional Consent Mode defaults, and tracking cookies removed from parent domains too.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ADMIN, INIT, consentOf, TEST_DOMAIN, WRITE_KEY, inBanner, launch, ready, root, sitePage, startCollector, startSite, stored, ui, until } from "./harness.mjs";

let site, collector, browser, hostOrigin;
const SERVED = JSON.parse(readFileSync(path.join(root, "protocol/test-vectors/assignment.json"), "utf8")).served;
const CONFIG = {
  cookies: { analytics: ["_ga", "_ga_*"], advertising: ["_gcl_*"] },
  consentModeDefaults: [{ region: ["US-CA"], state: { analytics_storage: "granted" } }],
  flushIntervalMs: 60000,
};

before(async () => {
  site = await startSite();
  const port = new URL(site.origin).port;
  hostOrigin = `http://www.shop.${TEST_DOMAIN}:${port}`;
  // The published test key, so that the assignment vectors' pseudonyms are this collector's.
  collector = await startCollector(`${site.origin},${hostOrigin}`, {
    ASSENT_PSEUDONYM_KEY: SERVED.key,
    ASSENT_PSEUDONYM_KEY_ID: SERVED.key_id,
  });
  browser = await launch();
  site.pages.set("/t/", sitePage(collector, { config: CONFIG }));
  site.pages.set("/shop/", sitePage(collector, { config: CONFIG }));
  // The README's example page, as a newcomer runs it (pointed at this collector).
  const example = readFileSync(path.join(ui, "examples/index.html"), "utf8")
    .replaceAll("http://127.0.0.1:8080", collector.url)
    .replaceAll("WRITE_KEY", WRITE_KEY);
  site.pages.set("/example/", example);
  site.pages.set("/t/next", "<!doctype html><title>next</title><p>next page</p>");
});

after(async () => {
  await browser?.close();
  collector?.stop();
  await site?.close();
});

async function accepted(origin = site.origin) {
  const context = await browser.newContext();
  await context.addInitScript(INIT);
  const page = await context.newPage();
  await page.goto(origin + "/t/");
  await ready(page);
  await inBanner(page, "#accept").click();
  const s = await until(() => stored(page), "state");
  return { context, page, s };
}

test("events queued when the page goes away are delivered (keepalive), under the visitor's subject", async () => {
  const { context, page, s } = await accepted();
  await page.evaluate(() => {
    assent.track("Left Quickly", { step: 1 }, "analytics");
    assent.track("Left Quickly", { step: 2 }, "analytics");
  });
  await page.goto(site.origin + "/t/next"); // pagehide: the batch goes with keepalive
  const held = await until(async () => {
    const h = await collector.subject(s.id);
    return h.events.length === 2 && h;
  }, "events sent on pagehide");
  assert.deepEqual(held.events.map((e) => e.properties.step).sort(), [1, 2]);
  assert.equal(held.events[0].anonymousId, held.consent[0].subjectId, "events and consent share one subject");

  // The audit trail exported for compliance staff carries the proof of what was shown.
  const audit = (await collector.auditExport()).trim().split("\n").map((l) => JSON.parse(l));
  const entry = audit.find((e) => JSON.stringify(e).includes(held.consent[0].consentId));
  assert.ok(entry, "the consent record is in the audit export");
  const data = JSON.parse(entry.data);
  assert.equal(data.noticeHash, held.consent[0].noticeHash);
  assert.equal(data.uiVersion, "0.1.0");
  assert.deepEqual(data.interaction, { layer: "first", control: "accept_all" });
  await context.close();
});

test("events that cannot be sent are refused at once, without breaking the page or the queue", async () => {
  const { context, page, s } = await accepted();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const results = await page.evaluate(() => {
    const cyclic = { a: 1 };
    cyclic.self = cyclic;
    return [
      assent.track("Cyclic", cyclic),
      assent.track("", {}),
      assent.track(undefined),
      assent.track("Big", { n: 10n }),
      assent.track("Fine", { f: () => 1, u: undefined, ok: true }),
    ];
  });
  assert.deepEqual(results, [false, false, false, false, true]);
  await page.evaluate(() => assent.flush());
  const held = await until(async () => {
    const h = await collector.subject(s.id);
    return h.events.length && h;
  }, "the valid event");
  assert.deepEqual(held.events.map((e) => [e.event, e.properties]), [["Fine", { ok: true }]]);
  assert.deepEqual(errors, []);
  await context.close();
});

test("impressions and clicks of a recommendation list carry its recId; a bad id sends nothing", async () => {
  const { context, page, s } = await accepted();
  const recId = "home.3." + "0123456789abcdef".repeat(2);
  const results = await page.evaluate((id) => [
    assent.recommendationViewed(id, { slot: "home" }),
    assent.recommendationClicked(id, "book-7"),
    assent.recommendationViewed("home.3", {}),
    assent.recommendationViewed(id.toUpperCase(), {}),
    assent.recommendationClicked(id, ""),
    assent.recommendationClicked(undefined, "book-7"),
  ], recId);
  assert.deepEqual(results, [true, true, false, false, false, false]);
  await page.evaluate(() => assent.flush());
  const held = await until(async () => {
    const h = await collector.subject(s.id);
    return h.events.length === 2 && h;
  }, "the two feedback events");
  assert.deepEqual(
    held.events.map((e) => [e.event, e.properties]).sort(),
    [
      ["Recommendation Clicked", { rec_id: recId, item_id: "book-7" }],
      ["Recommendation Viewed", { slot: "home", rec_id: recId }],
    ],
  );
  await context.close();
});

test("assent.content fills an element with the visitor's variant, the fallback before a decision", async () => {
  const put = (kind, name, body) =>
    fetch(`${collector.url}/v1/definitions/${kind}/${name}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  let r = await put("slots", "hero", {
    blockType: "headline",
    variants: { plain: { title: "Hello" }, bold: { title: "Hello <b>you</b>" } },
    default: "plain",
  });
  assert.equal(r.status, 200);
  r = await put("experiments", "hero-all", {
    slot: "hero", variants: ["plain", "bold"], weights: [0, 1],
    primary: { name: "signups", kind: "conversion", event: "Signed Up" },
  });
  assert.equal(r.status, 200, await r.text());
  const context = await browser.newContext();
  await context.addInitScript(INIT);
  const page = await context.newPage();
  await page.goto(site.origin + "/t/");
  await ready(page);
  const before = await page.evaluate(async () => {
    document.body.insertAdjacentHTML("beforeend", '<div id="hero"></div>');
    const a = await assent.content("hero", document.getElementById("hero"));
    return [a && a.reason, document.getElementById("hero").innerHTML, await assent.content("Not A Slot")];
  });
  assert.deepEqual(before, ["fallback", "<h2>Hello</h2>", null]);
  await inBanner(page, "#accept").click();
  await until(() => stored(page), "state");
  await page.evaluate(() => assent.flush());
  const after = await until(async () => {
    const got = await page.evaluate(async () => {
      const a = await assent.content("hero", document.getElementById("hero"));
      return [a && a.reason, a && a.variant, document.getElementById("hero").innerHTML];
    });
    return got[0] === "experiment" && got;
  }, "the experiment's variant once analytics is granted");
  assert.deepEqual(after, ["experiment", "bold", "<h2>Hello &lt;b&gt;you&lt;/b&gt;</h2>"]);
  r = await put("flags", "new-nav", { kind: "boolean", variants: { on: true, off: false }, default_variant: "off",
    rules: [{ when: { device: ["desktop"] }, serve: { variant: "on" } }] });
  assert.equal(r.status, 200, await r.text());
  const flags = await page.evaluate(async () => [
    await assent.flag("new-nav", false),
    await assent.flag("no-such-flag", "fallback"),
    await assent.flag("new-nav", "not a boolean"),
  ]);
  assert.deepEqual(flags[0], { value: true, variant: "on", reason: "TARGETING_MATCH" }, "Chromium on Linux is a desktop, by its User-Agent");
  assert.deepEqual(flags[1], { value: "fallback", reason: "ERROR", errorCode: "FLAG_NOT_FOUND" });
  assert.deepEqual(flags[2], { value: "not a boolean", reason: "ERROR", errorCode: "TYPE_MISMATCH" });
  await context.close();
});

test("the variants a visitor is shown are those of the published assignment vectors", async () => {
  // Each case is the id the web script sends; the collector assigns its pseudonym.
  const put = (kind, name, body) =>
    fetch(`${collector.url}/v1/definitions/${kind}/${name}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const names = SERVED.weights.map((_, i) => `v${i}`);
  let r = await put("slots", "vectors", {
    blockType: "headline",
    variants: Object.fromEntries(names.map((n) => [n, { title: n }])),
    default: "v0",
  });
  assert.equal(r.status, 200, await r.text());
  r = await put("experiments", "vectors", {
    slot: "vectors", variants: names, seed: SERVED.seed, weights: SERVED.weights, coverage: SERVED.coverage,
    primary: { name: "signups", kind: "conversion", event: "Signed Up" },
  });
  assert.equal(r.status, 200, await r.text());
  assert.equal(SERVED.cases.length, 8);
  for (const c of SERVED.cases) {
    // A returning visitor with this id, decided under an older policy: asked again, they accept.
    const context = await browser.newContext();
    await context.addInitScript(INIT);
    await context.addInitScript((id) => {
      const old = { necessary: true, analytics: false, personalization: false, advertising: false };
      localStorage.setItem("assent", JSON.stringify({ v: 1, id, purposes: old, policyVersion: "2020-01", at: Date.now() }));
    }, c.subject);
    const page = await context.newPage();
    await page.goto(site.origin + "/t/");
    await ready(page);
    await inBanner(page, "#accept").click();
    await until(async () => (await stored(page))?.purposes.analytics, "the acceptance stored");
    assert.equal((await stored(page)).id, c.subject, "the id is kept");
    await page.evaluate(() => assent.flush());
    const want = c.variant === null ? ["fallback", "v0"] : ["experiment", `v${c.variant}`];
    const got = await until(async () => {
      const a = await page.evaluate(async () => {
        document.getElementById("vectors") || document.body.insertAdjacentHTML("beforeend", '<div id="vectors"></div>');
        const a = await assent.content("vectors", document.getElementById("vectors"));
        return [a && a.reason, a && a.variant, document.getElementById("vectors").textContent];
      });
      // Outside the coverage the answer stays the fallback: wait for the consent to count first.
      const counted = (await collector.subject(c.subject)).consent.some((x) => x.purposes?.analytics === true);
      return counted && (c.variant === null || a[0] === "experiment") && a;
    }, `the variant of ${c.subject}`);
    assert.deepEqual(got, [...want, want[1]], JSON.stringify(c));
    await context.close();
  }
});

test("a failed batch is retried with the same messageIds and stored once", async () => {
  const { context, page, s } = await accepted();
  const bodies = [];
  await page.route(`${collector.url}/v1/batch`, async (route) => {
    bodies.push(JSON.parse(route.request().postData()));
    if (bodies.length === 1) return route.fulfill({ status: 503, headers: { "retry-after": "1", "access-control-allow-origin": site.origin }, body: "{}" });
    if (bodies.length === 2) return route.abort("connectionreset");
    return route.continue();
  });
  await page.evaluate(() => assent.track("Paid", { amount: 10 }, "analytics"));
  await page.evaluate(() => assent.flush());
  const held = await until(async () => {
    const h = await collector.subject(s.id);
    return h.events.length && h;
  }, "event after retries", 20000);
  assert.ok(bodies.length >= 3, `sent ${bodies.length} times`);
  const ids = new Set(bodies.map((b) => b.batch[0].messageId));
  assert.equal(ids.size, 1, "one messageId across every attempt");
  assert.equal(held.events.length, 1);
  assert.equal(held.events[0].messageId, [...ids][0]);
  assert.ok(bodies.every((b) => b.writeKey && !JSON.stringify(b.batch).includes(b.writeKey)));
  await context.close();
});

test("regional Consent Mode defaults come first, then the denied-everywhere default", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(site.origin + "/t/");
  await page.waitForFunction(() => window.dataLayer && window.dataLayer.length >= 2);
  const [regional, global] = await page.evaluate(() => window.dataLayer.slice(0, 2).map((a) => Array.from(a)));
  assert.deepEqual(regional[2].region, ["US-CA"]);
  assert.equal(regional[2].analytics_storage, "granted");
  assert.equal(regional[2].ad_storage, "denied");
  assert.equal(global[2].region, undefined);
  assert.equal(global[2].analytics_storage, "denied");
  await context.close();
});

test("after a withdrawal, tracking cookies are gone from the host, its parent domains and every path", async () => {
  // Served over plain http under a real-looking name: the banner works without WebCrypto,
  // and its records then lack only the noticeHash.
  const { context, page, s } = await accepted(hostOrigin);
  const [rec] = await consentOf(collector, s.id);
  assert.equal(rec.method, "accept_all");
  assert.equal(rec.noticeHash, undefined);
  await page.waitForFunction(() => window.__trackerRuns === 1);
  await page.evaluate((d) => {
    document.cookie = `_ga=GA1.2.parent; path=/; domain=shop.${d}`;
    document.cookie = `_ga_XYZ=GS1.3; path=/; domain=${d}`;
    document.cookie = `_gcl_au=1.1; path=/t/; domain=${d}`;
    document.cookie = "keep_me=1; path=/";
  }, TEST_DOMAIN);
  const cookies = async () => (await context.cookies()).map((c) => `${c.name}@${c.domain}${c.path}`).sort();
  assert.ok((await cookies()).length >= 6, (await cookies()).join(" "));
  await page.evaluate(() => assent.showPreferences());
  await inBanner(page, "dialog[open] #reject").click();
  // A cookie on a path that does not cover this page is invisible from here (the browser
  // hides it); it goes as soon as a page under its path loads the banner.
  assert.deepEqual(await cookies(), [`_ga_XYZ@www.shop.${TEST_DOMAIN}/shop/`, `keep_me@www.shop.${TEST_DOMAIN}/`]);
  await page.goto(hostOrigin + "/shop/");
  await ready(page);
  assert.deepEqual(await cookies(), [`keep_me@www.shop.${TEST_DOMAIN}/`]);
  assert.equal(await page.evaluate(() => window.__trackerRuns ?? 0), 0, "and the tracker stays blocked");
  await context.close();
});

test("the README's example page works as the README says", async () => {
  const context = await browser.newContext();
  await context.addInitScript(INIT);
  const page = await context.newPage();
  await page.goto(site.origin + "/example/");
  await ready(page);
  assert.equal(await page.textContent("#status"), "analytics script not run");
  // The banner is modal until a choice is made; a script may still try to track.
  await page.evaluate(() => document.getElementById("buy").click());
  assert.match(await page.textContent("#status"), /not tracked/);
  await inBanner(page, "#accept").click();
  await page.waitForFunction(() => /analytics script ran/.test(document.getElementById("status").textContent));
  await page.click("#buy");
  const id = await page.textContent("#id");
  assert.match(id, /^[0-9a-f]{32}$/);
  const held = await until(async () => {
    const h = await collector.subject(id);
    return h.events.length && h;
  }, "the example's event");
  assert.equal(held.events[0].event, "Order Completed");
  assert.equal(held.consent[0].method, "accept_all");
  await context.close();
});
