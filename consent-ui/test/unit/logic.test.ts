import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { toConsentMode } from "../../src/consent-mode";
import { domainsOf, matches, pathsOf } from "../../src/blocker";
import { canonicalJson, normalizeUserId, pepperUserId, uuidv7 } from "../../src/util";
import { backoff } from "../../src/transport";
import { parseConfig } from "../../src/config";

const here = new URL(".", import.meta.url);
const root = new URL("../../../", here);

test("the user id is peppered exactly as the protocol's published test vectors say", async () => {
  const { vectors } = JSON.parse(readFileSync(new URL("protocol/test-vectors/user-id-hmac.json", root), "utf8"));
  assert.ok(vectors.length >= 5);
  for (const v of vectors) {
    assert.equal(normalizeUserId(v.input), v.normalized, JSON.stringify(v.input));
    assert.equal(await pepperUserId(v.pepper, v.input), v.output, JSON.stringify(v.input));
  }
  await assert.rejects(pepperUserId("a-long-enough-pepper", " \t "), /empty user id/);
});

test("purposes map onto the seven Consent Mode v2 types", () => {
  const m = toConsentMode({ necessary: true, analytics: true, personalization: false, advertising: false });
  assert.deepEqual(m, {
    ad_storage: "denied",
    ad_user_data: "denied",
    ad_personalization: "denied",
    analytics_storage: "granted",
    personalization_storage: "denied",
    functionality_storage: "granted",
    security_storage: "granted",
  });
  const ads = toConsentMode({ necessary: true, analytics: false, personalization: false, advertising: true });
  assert.equal(ads.ad_user_data, "granted");
  assert.equal(ads.ad_personalization, "granted");
  assert.equal(ads.analytics_storage, "denied");
});

test("cookie patterns, parent domains and paths cover every place a cookie may live", () => {
  assert.ok(matches("_ga", "_ga"));
  assert.ok(matches("_ga_ABC123", "_ga_*"));
  assert.ok(!matches("_gat", "_ga"));
  assert.ok(!matches("x_ga_1", "_ga_*"));
  assert.deepEqual(domainsOf("www.shop.example.co.uk"), ["www.shop.example.co.uk", "shop.example.co.uk", "example.co.uk", "co.uk"]);
  assert.deepEqual(domainsOf("127.0.0.1"), ["127.0.0.1"]);
  assert.deepEqual(pathsOf("/shop/cart/"), ["/", "/shop", "/shop/", "/shop/cart", "/shop/cart/"]);
});

test("consent ids are UUIDv7, time-ordered", () => {
  const a = uuidv7(1_700_000_000_000);
  const b = uuidv7(1_700_000_000_001);
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(a < b);
});

test("the notice is hashed from a canonical encoding: key order does not matter", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: "é" } }), '{"a":{"c":"é","d":[1,{"x":1,"y":2}]},"b":1}');
  assert.equal(canonicalJson({ a: undefined, b: null }), '{"b":null}');
});

test("backoff is full-jitter, growing and capped", () => {
  assert.equal(backoff(0, () => 0.999), 999);
  assert.equal(backoff(3, () => 0.5), 4000);
  assert.equal(backoff(40, () => 0.999), 299_700);
});

test("a bad configuration is refused with a message that names the field", () => {
  const ok = { writeKey: "wk", policyVersion: "1", endpoint: "https://c.example/", base: "/" };
  assert.equal(parseConfig(ok).endpoint, "https://c.example");
  assert.throws(() => parseConfig({ ...ok, writeKey: "" }), /data-write-key/);
  assert.throws(() => parseConfig({ ...ok, policyVersion: undefined } as never), /data-policy-version/);
  assert.throws(() => parseConfig({ ...ok, purposes: ["telepathy"] } as never), /purposes/);
  assert.throws(() => parseConfig({ ...ok, userIdPepper: "short" }), /16 bytes/);
  assert.throws(() => parseConfig({ ...ok, tcf: { cmpId: 5000, cmpVersion: 1, vendorListVersion: 1, vendors: [] } }), /12-bit/);
});

test("the bundle stays within its size budget (gzipped)", () => {
  const m = JSON.parse(readFileSync(new URL("consent-ui/dist/manifest.json", root), "utf8"));
  assert.ok(m.gzipBytes.assent <= 15 * 1024, `assent.js ${m.gzipBytes.assent} B`);
  assert.ok(m.gzipBytes["assent.esm"] <= 15 * 1024, `assent.esm.js ${m.gzipBytes["assent.esm"]} B`);
  for (const k of ["lang-de", "lang-fr", "tcf"]) assert.ok(m.gzipBytes[k] <= 4 * 1024, `${k} ${m.gzipBytes[k]} B`);
});

test("the banner speaks the page's language, else the browser's, else English", async () => {
  const { pickLanguage } = await import("../../src/assent");
  assert.equal(pickLanguage([undefined, "de-AT", "en-US"]), "de");
  assert.equal(pickLanguage(["", "pt-BR", "fr-CA"]), "fr");
  assert.equal(pickLanguage(["FR"]), "fr");
  assert.equal(pickLanguage(["ja", "pt"]), "en");
});
