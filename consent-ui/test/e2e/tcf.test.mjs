// IAB TCF in the browser: the CMP API answers before and after the choice, framed vendors
// reach it through the locator frame, the TC string goes into the consent record, and
// @iabtcf/core reads it. Also the 13-month re-ask, the ES module build and the bundle's
// HTTP caching.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { TCString } from "@iabtcf/core";
import { INIT, consentOf, WRITE_KEY, inBanner, launch, ready, sitePage, startCollector, startSite, stored, ui, until } from "./harness.mjs";

let site, collector, browser;
const TCF = {
  tcf: {
    cmpId: 300,
    cmpVersion: 2,
    vendorListVersion: 150,
    publisherCC: "FR",
    publisherPurposes: [1],
    vendors: [
      { id: 8, name: "Measure Co", purposes: [1, 8] },
      { id: 755, name: "Big Network", purposes: [1, 2, 3, 4, 7], specialFeatures: [1] },
    ],
  },
};

before(async () => {
  site = await startSite();
  collector = await startCollector(site.origin);
  browser = await launch();
  site.pages.set("/tcf/", sitePage(collector, { config: TCF, lang: "fr" }));
  site.pages.set(
    "/vendor-frame",
    `<!doctype html><script>
      window.answer = new Promise((resolve) => {
        addEventListener("message", (e) => e.data && e.data.__tcfapiReturn && resolve(e.data.__tcfapiReturn));
        let w = window;
        while (w && !w.frames["__tcfapiLocator"]) w = w === w.parent ? null : w.parent;
        w.postMessage({ __tcfapiCall: { command: "getTCData", version: 2, callId: "c1", parameter: [8, 755] } }, "*");
      });
    </script>`,
  );
  site.pages.set(
    "/esm/",
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ESM</title></head><body><main><h1>ESM</h1></main>
    <script type="module">
      import { createAssent } from "${collector.url}/sdk/assent.esm.js";
      window.site = await createAssent({ writeKey: "${WRITE_KEY}", policyVersion: "1", endpoint: "${collector.url}" });
      window.__assentReady = true;
    </script></body></html>`,
  );
});

after(async () => {
  await browser?.close();
  collector?.stop();
  await site?.close();
});

const tcfapi = (page, command, parameter) =>
  page.evaluate(([c, p]) => new Promise((resolve) => __tcfapi(c, 2, (data, ok) => resolve({ data, ok }), p)), [command, parameter]);

test("TCF: the CMP API, the locator frame, a TC string in the record that @iabtcf/core reads", async () => {
  const context = await browser.newContext();
  await context.addInitScript(INIT);
  const page = await context.newPage();
  await page.goto(site.origin + "/tcf/");
  await ready(page);
  await inBanner(page, "dialog[open] #accept").waitFor();
  assert.match(await inBanner(page, "dialog[open]").innerText(), /Transparency & Consent Framework/);
  // The TCF vendors are disclosed under the purposes they serve.
  await inBanner(page, "#customize").click();
  const prefs = await inBanner(page, "dialog[open]").innerText();
  assert.match(prefs, /Mesure d’audience[\s\S]*Measure Co[\s\S]*Publicité[\s\S]*Big Network/);
  await page.keyboard.press("Escape");
  await inBanner(page, "dialog[open] #customize").waitFor();
  const ping = await tcfapi(page, "ping");
  assert.equal(ping.ok, true);
  assert.equal(ping.data.cmpId, 300);
  assert.equal(ping.data.displayStatus, "visible");
  assert.equal(await page.evaluate(() => !!window.frames["__tcfapiLocator"]), true);

  await page.evaluate(() => {
    window.events = [];
    __tcfapi("addEventListener", 2, (d) => window.events.push({ status: d.eventStatus, tc: d.tcString, id: d.listenerId }));
  });
  await inBanner(page, "#accept").click();
  const done = await page.waitForFunction(() => window.events.find((e) => e.status === "useractioncomplete"));
  const { tc } = await done.jsonValue();
  const theirs = TCString.decode(tc);
  assert.equal(theirs.cmpId, 300);
  assert.equal(theirs.consentLanguage, "FR");
  assert.equal(theirs.isServiceSpecific, true);
  assert.deepEqual([...theirs.vendorConsents.values()].sort((a, b) => a - b), [8, 755]);
  assert.deepEqual([...theirs.vendorsDisclosed.values()].sort((a, b) => a - b), [8, 755]);
  assert.deepEqual([...theirs.specialFeatureOptins.values()], [1]);
  assert.deepEqual([...theirs.publisherConsents.values()], [1]);

  const data = await tcfapi(page, "getTCData", [8, 755, 9]);
  assert.equal(data.data.tcString, tc);
  assert.deepEqual(data.data.vendor.consents, { 8: true, 755: true, 9: false });

  // A vendor in a nested frame finds the locator and gets an answer by postMessage.
  const frame = await page.evaluate((src) => {
    const f = document.createElement("iframe");
    f.src = src;
    f.title = "vendor";
    document.body.append(f);
    return new Promise((r) => (f.onload = r));
  }, site.origin + "/vendor-frame");
  void frame;
  const answer = await page.frames().find((f) => f.url().endsWith("/vendor-frame")).evaluate(() => window.answer);
  assert.equal(answer.success, true);
  assert.equal(answer.callId, "c1");
  assert.equal(answer.returnValue.tcString, tc);

  const id = (await stored(page)).id;
  const [rec] = await consentOf(collector, id);
  assert.equal(rec.tcf, tc, "the TC string is kept with the consent record");

  const removed = await page.evaluate(() => new Promise((r) => __tcfapi("removeEventListener", 2, (ok) => r(ok), window.events[0].id)));
  assert.equal(removed, true);

  // 13 months later the choice has expired: asked again.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("assent"));
    s.at -= 396 * 24 * 3600 * 1000;
    localStorage.setItem("assent", JSON.stringify(s));
  });
  await page.reload();
  await ready(page);
  await inBanner(page, "dialog[open] #accept").waitFor();
  assert.equal(await page.evaluate(() => assent.getConsent().advertising), false);
  await context.close();
});

test("the ES module build works from a module script on another origin", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(site.origin + "/esm/");
  await page.waitForFunction(() => window.__assentReady);
  await inBanner(page, "#accept").click();
  assert.equal(await page.evaluate(() => window.site.track("Module Event")), true);
  await page.evaluate(() => window.site.flush());
  const id = (await stored(page)).id;
  const held = await until(async () => {
    const h = await collector.subject(id);
    return h.events.length && h;
  }, "event from the ES module build");
  assert.equal(held.events[0].event, "Module Event");
  assert.deepEqual(errors, []);
  await context.close();
});

test("the collector serves the bundle: hashed names cached for good, plain names revalidated, gzip", async () => {
  const manifest = JSON.parse(readFileSync(path.join(ui, "dist/manifest.json"), "utf8"));
  const plain = await fetch(`${collector.url}/sdk/assent.js`, { headers: { "accept-encoding": "gzip" } });
  assert.equal(plain.status, 200);
  assert.match(plain.headers.get("content-type"), /javascript/);
  assert.equal(plain.headers.get("cache-control"), "public, max-age=3600");
  assert.equal(plain.headers.get("content-encoding"), "gzip");
  const body = await plain.arrayBuffer();
  assert.equal(Buffer.from(body).length, readFileSync(path.join(ui, "dist/assent.js")).length, "fetch inflated it");
  const hashed = await fetch(`${collector.url}/sdk/${manifest.files.assent}`);
  assert.equal(hashed.headers.get("cache-control"), "public, max-age=31536000, immutable");
  const again = await fetch(`${collector.url}/sdk/assent.js`, { headers: { "if-none-match": plain.headers.get("etag") } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${collector.url}/sdk/../Cargo.toml`)).status, 404);
  assert.equal((await fetch(`${collector.url}/sdk/nope.js`)).status, 404);
});

test("when the TCF module cannot load, the choice is still stored, applied and recorded", async () => {
  const context = await browser.newContext();
  await context.addInitScript(INIT);
  const page = await context.newPage();
  await page.route(/\/sdk\/tcf\.[0-9a-f]+\.js$/, (route) => route.abort("connectionrefused"));
  await page.goto(site.origin + "/tcf/");
  await ready(page);
  await inBanner(page, "#accept").click();
  const s = await until(() => stored(page), "state");
  assert.equal(s.purposes.analytics, true);
  const [rec] = await consentOf(collector, s.id);
  assert.equal(rec.method, "accept_all");
  assert.equal(rec.tcf, undefined);
  await page.waitForFunction(() => window.__trackerRuns === 1);
  await context.close();
});
