// The banner in Debian's Chromium against the real collector: what regulators ask of it
// (no tracking before a choice, equal buttons, GPC, withdrawal), what site owners need
// (script blocking, cookies gone after a reject, Consent Mode, re-asking on a new policy)
// and what compliance staff rely on (the record in the collector, with proof of the notice).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  INIT,
  consentOf,
  axeSource,
  inBanner,
  launch,
  ready,
  shot,
  sitePage,
  startCollector,
  startSite,
  stored,
  until,
} from "./harness.mjs";

let site, collector, browser;
const CONFIG = {
  cookies: { analytics: ["_ga", "_ga_*"] },
  vendors: [
    { name: "Plausible-like Stats", purposes: ["analytics"], url: "https://example.com/privacy" },
    { name: "AdNetwork", purposes: ["advertising"], cookies: ["_fbp"] },
  ],
  gtmEvents: { purchase: "analytics" },
};

before(async () => {
  site = await startSite();
  collector = await startCollector(site.origin);
  browser = await launch();
  site.pages.set("/shop/", sitePage(collector, { config: CONFIG }));
  site.pages.set("/shop/v2", sitePage(collector, { config: CONFIG, policy: "2027-01" }));
  site.pages.set("/de/", sitePage(collector, { config: CONFIG, lang: "de" }));
});

after(async () => {
  await browser?.close();
  collector?.stop();
  await site?.close();
});

/** A fresh visitor: a new browser context, with the collector's traffic recorded. */
async function visit(path = "/shop/", options = {}) {
  const context = await browser.newContext(options);
  await context.addInitScript(INIT);
  if (options.gpc) await context.addInitScript(() => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true }));
  const page = await context.newPage();
  const sent = [];
  page.on("request", (r) => {
    if (r.url().startsWith(collector.url + "/v1/")) sent.push({ path: new URL(r.url()).pathname, body: r.postData() });
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(site.origin + path);
  await ready(page);
  return { context, page, sent, errors };
}

const firstLayer = (page) => inBanner(page, "dialog[open] #customize");

test("before any decision nothing is tracked, stored or sent; Reject all stores an all-false record", async () => {
  const { page, sent, context, errors } = await visit();
  await firstLayer(page).waitFor();
  assert.equal(await page.evaluate(() => assent.track("Viewed", {}, "analytics")), false);
  await page.evaluate(() => assent.flush());
  assert.deepEqual(sent, [], "no request to the collector before a choice");
  assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing stored before a choice");
  assert.deepEqual(await context.cookies(), [], "no cookie before a choice");
  assert.equal(await page.evaluate(() => window.__trackerRuns ?? 0), 0, "blocked script did not run");

  // Consent Mode v2: defaults first, all denied, waiting for the update.
  const dl = await page.evaluate(() => window.dataLayer.map((a) => Array.from(a)));
  assert.deepEqual(dl[0].slice(0, 2), ["consent", "default"]);
  assert.equal(dl[0][2].ad_storage, "denied");
  assert.equal(dl[0][2].analytics_storage, "denied");
  assert.equal(dl[0][2].ad_user_data, "denied");
  assert.equal(dl[0][2].wait_for_update, 500);

  await inBanner(page, "#reject").click();
  const s = await until(() => stored(page), "state");
  const [rec] = await consentOf(collector, s.id);
  assert.deepEqual(rec.purposes, { necessary: true, analytics: false, personalization: false, advertising: false });
  assert.equal(rec.method, "reject_all");
  assert.equal(rec.source, "banner");
  assert.deepEqual(rec.interaction, { layer: "first", control: "reject_all" });
  assert.match(rec.noticeHash, /^[0-9a-f]{64}$/);
  assert.equal(rec.uiVersion, "0.1.0");
  assert.equal(rec.gpc, false);

  assert.equal(await page.evaluate(() => assent.track("Viewed", {}, "analytics")), false);
  await page.evaluate(() => assent.flush());
  assert.equal(sent.filter((r) => r.path === "/v1/batch").length, 0, "no tracking after Reject all");
  assert.equal(await page.evaluate(() => window.__trackerRuns ?? 0), 0);
  const update = await page.evaluate(() => window.dataLayer.map((a) => Array.from(a)).filter((a) => a[1] === "update").pop());
  assert.equal(update[2].analytics_storage, "denied");
  assert.deepEqual(errors, []);
  await context.close();
});

test("Accept all: scripts run once, events land in the collector with their purpose, Consent Mode updated", async () => {
  const { page, context, errors } = await visit();
  await inBanner(page, "#accept").click();
  await page.waitForFunction(() => window.__trackerRuns === 1 && window.__inlineRuns === 1);
  const update = await page.evaluate(() => window.dataLayer.map((a) => Array.from(a)).filter((a) => a[1] === "update").pop());
  assert.equal(update[2].ad_storage, "granted");
  assert.equal(update[2].analytics_storage, "granted");

  assert.equal(await page.evaluate(() => assent.track("Added to Cart", { sku: "A1" }, "analytics")), true);
  assert.equal(await page.evaluate(() => assent.track("Ad Clicked", { slot: "top" }, "advertising")), true);
  await page.evaluate(() => assent.page());
  await page.evaluate(() => window.dataLayer.push({ event: "purchase", value: 42, ecommerce: { items: [] } }));
  await page.evaluate(() => assent.flush());
  const s = await stored(page);
  const held = await until(async () => {
    const h = await collector.subject(s.id);
    return h.events.length >= 4 && h;
  }, "4 events in the collector");
  const byName = Object.fromEntries(held.events.map((e) => [e.event ?? e.type, e]));
  assert.equal(byName["Added to Cart"].purpose, "analytics");
  assert.equal(byName["Added to Cart"].properties.sku, "A1");
  assert.equal(byName["Ad Clicked"].purpose, "advertising");
  assert.equal(byName.page.purpose, "analytics");
  assert.equal(byName.purchase.properties.value, 42, "GTM dataLayer event forwarded");
  assert.equal(byName.purchase.properties.ecommerce, undefined, "objects are not forwarded");
  assert.equal(held.consent[0].method, "accept_all");

  // Changing the choice to the same thing never runs a script twice.
  await page.evaluate(() => assent.showPreferences());
  await inBanner(page, "#save").click();
  await page.reload();
  await ready(page);
  assert.equal(await page.evaluate(() => window.__dialogs), 0, "returning visitor: no banner, no flash");
  assert.equal(await page.evaluate(() => window.__trackerRuns), 1, "runs once per page, never twice");
  assert.deepEqual(errors, []);
  await context.close();
});

test("withdrawal is as easy as consent: cookies go on every path, the id is retired", async () => {
  const { page, context } = await visit();
  await inBanner(page, "#accept").click();
  await page.waitForFunction(() => window.__trackerRuns === 1);
  const names = async () => (await context.cookies()).map((c) => `${c.name}@${c.path}`).sort();
  assert.deepEqual(await names(), ["_ga@/", "_ga_XYZ@/", "_ga_XYZ@/shop/"]);
  await context.addCookies([{ name: "_fbp", value: "fb.1", url: site.origin + "/" }]);
  const before = await stored(page);
  await page.evaluate(() => assent.track("Queued", {}, "analytics"));

  await inBanner(page, "#s").click(); // the always-available "Privacy settings" control
  await inBanner(page, "dialog[open] #reject").click();
  assert.deepEqual(await names(), [], "analytics and advertising cookies removed on every path");
  const after = await stored(page);
  assert.notEqual(after.id, before.id, "a new, unlinkable id after full withdrawal");
  assert.equal(await page.evaluate(() => localStorage.getItem("assent_q")), null, "queued events dropped");
  const recs = await consentOf(collector, before.id, 2);
  assert.equal(recs[1].method, "withdraw");
  assert.equal(recs[1].previous.analytics, true);
  assert.deepEqual(recs[1].interaction, { layer: "second", control: "reject_all" });
  await context.close();
});

test("Global Privacy Control: advertising denied by default, said in the banner, recorded", async () => {
  const { page, context } = await visit("/shop/", { gpc: true });
  await firstLayer(page).waitFor();
  assert.match(await inBanner(page, "dialog[open] .note").innerText(), /Global Privacy Control/);
  await inBanner(page, "#accept").click();
  const s = await until(() => stored(page), "state");
  assert.equal(s.purposes.advertising, false);
  assert.equal(s.purposes.analytics, true);
  assert.equal(await page.evaluate(() => assent.track("Ad Clicked", {}, "advertising")), false);
  const [rec] = await consentOf(collector, s.id);
  assert.equal(rec.gpc, true);
  assert.equal(rec.method, "gpc");
  assert.equal(rec.purposes.advertising, false);
  // On the second layer the advertising switch is off and cannot be turned on.
  await page.evaluate(() => assent.showPreferences());
  assert.equal(await inBanner(page, "#p-advertising").isDisabled(), true);
  assert.equal(await inBanner(page, "#p-advertising").isChecked(), false);
  await context.close();
});

test("keyboard only: focus moves into the dialog, stays there, and every control works", async () => {
  const { page, context } = await visit();
  await firstLayer(page).waitFor();
  const focused = () => page.evaluate(() => document.getElementById("assent-banner").shadowRoot.activeElement?.id || "");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "accept");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "reject");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "customize");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "accept", "focus wraps inside the dialog");
  await page.keyboard.press("Shift+Tab");
  assert.equal(await focused(), "customize");
  await page.keyboard.press("Escape");
  assert.equal(await firstLayer(page).count(), 1, "Escape does not dismiss the choice");
  await page.keyboard.press("Enter");
  await inBanner(page, "dialog[open] #save").waitFor();
  assert.equal(await focused(), "p-analytics", "focus moves to the first choice");
  for (const id of ["p-analytics", "p-personalization", "p-advertising"]) {
    assert.equal(await inBanner(page, `#${id}`).isChecked(), false, `${id} not pre-ticked`);
  }
  await page.keyboard.press("Space");
  for (let i = 0; i < 10 && (await focused()) !== "save"; i++) await page.keyboard.press("Tab");
  assert.equal(await focused(), "save");
  await page.keyboard.press("Enter");
  const s = await until(() => stored(page), "state");
  assert.deepEqual(s.purposes, { necessary: true, analytics: true, personalization: false, advertising: false });
  const [rec] = await consentOf(collector, s.id);
  assert.equal(rec.method, "custom");
  assert.deepEqual(rec.interaction, { layer: "second", control: "save" });
  await context.close();
});

test("equal prominence: the three first-layer buttons have the same size and style", async () => {
  const { page, context } = await visit();
  await firstLayer(page).waitFor();
  const look = (id) =>
    inBanner(page, `#${id}`).evaluate((b) => {
      const s = getComputedStyle(b);
      const r = b.getBoundingClientRect();
      return { w: Math.round(r.width), h: Math.round(r.height), top: Math.round(r.top), bg: s.backgroundColor, color: s.color, font: s.fontSize + s.fontWeight, border: s.border };
    });
  const [a, r, c] = [await look("accept"), await look("reject"), await look("customize")];
  assert.deepEqual(r, a);
  assert.deepEqual(c, a);
  await context.close();
});

test("a new policy version asks again; optional purposes stop until answered", async () => {
  const { page, context } = await visit();
  await inBanner(page, "#accept").click();
  const s = await until(() => stored(page), "state");
  await consentOf(collector, s.id);
  await page.goto(site.origin + "/shop/v2");
  await ready(page);
  await firstLayer(page).waitFor();
  assert.equal(await page.evaluate(() => assent.getConsent().analytics), false);
  assert.equal(await page.evaluate(() => window.__trackerRuns ?? 0), 0, "blocked again under the new policy");
  const recs = await consentOf(collector, s.id, 2);
  assert.equal(recs[1].method, "policy_change");
  assert.deepEqual(recs[1].interaction, { layer: "signal", control: "policy_change" });
  await inBanner(page, "#accept").click();
  const again = await consentOf(collector, s.id, 3);
  assert.equal(again[2].policyVersion, "2027-01");
  await context.close();
});

test("German page: German texts loaded on demand from the collector; axe-core finds no violation", async () => {
  const { page, context, sent } = await visit("/de/");
  await firstLayer(page).waitFor();
  assert.equal(await inBanner(page, "#accept").innerText(), "Alle akzeptieren");
  await page.addScriptTag({ content: axeSource() });
  const check = () => page.evaluate(async () => (await axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] })).violations.map((v) => `${v.id}: ${v.nodes.length}`));
  assert.deepEqual(await check(), [], "first layer");
  await inBanner(page, "#customize").click();
  assert.deepEqual(await check(), [], "second layer");
  await inBanner(page, "#save").click();
  assert.deepEqual(await check(), [], "settings button");
  const [rec] = await consentOf(collector, (await until(() => stored(page), "state")).id);
  assert.equal(rec.locale, "de");
  assert.equal(sent.filter((r) => r.path === "/v1/batch").length, 0);
  await context.close();
});

test("a consent record is retried when the network fails, and travels with the events meanwhile", async () => {
  const context = await browser.newContext();
  await context.addInitScript(INIT);
  const page = await context.newPage();
  let failures = 0;
  await page.route(`${collector.url}/v1/consent`, (route) => (failures++ < 2 ? route.abort("connectionreset") : route.continue()));
  await page.goto(site.origin + "/shop/");
  await ready(page);
  await inBanner(page, "#accept").click();
  await page.evaluate(() => assent.track("After Retry", {}, "analytics"));
  await page.evaluate(() => assent.flush());
  const s = await stored(page);
  // The event's batch carries the record not yet acknowledged, so it is not held back;
  // the record itself keeps being retried until /v1/consent answers.
  await until(async () => failures >= 3, "the record retried after two failures", 20000);
  const held = await until(async () => {
    const h = await collector.subject(s.id);
    return h.events.length === 1 && h;
  }, "the event", 20000);
  await until(async () => (await page.evaluate(() => localStorage.getItem("assent_out"))) === null, "an empty outbox");
  assert.equal(held.consent.length, 1, "one record, however often sent");
  assert.equal(held.events[0].event, "After Retry");
  await context.close();
});

test("screenshots of both layers, desktop and phone", async () => {
  for (const [name, viewport] of [["desktop", { width: 1280, height: 800 }], ["phone", { width: 390, height: 844 }]]) {
    const { page, context } = await visit("/shop/", { viewport });
    await firstLayer(page).waitFor();
    await shot(page, `banner-${name}-first`);
    await inBanner(page, "#customize").click();
    await inBanner(page, "dialog[open] #save").waitFor();
    await shot(page, `banner-${name}-second`);
    await context.close();
  }
});
