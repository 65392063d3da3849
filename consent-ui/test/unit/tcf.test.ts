import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { GVL, TCModel as IabModel, TCString } from "@iabtcf/core";
import { decode, encode, TCF_POLICY_VERSION, type TCModel } from "../../src/tcf/tcstring";
import { modelFor } from "../../src/tcf/model";
import { grantedTcfPurposes } from "../../src/tcf-purposes";
import type { TcfConfig } from "../../src/types";

const cfg: TcfConfig = {
  cmpId: 300,
  cmpVersion: 2,
  vendorListVersion: 150,
  publisherCC: "FR",
  publisherPurposes: [1, 8],
  vendors: [
    { id: 1, name: "Ads Inc", purposes: [1, 2, 3, 4], legIntPurposes: [7], specialFeatures: [1] },
    { id: 8, name: "Measure Co", purposes: [1, 8] },
    { id: 755, name: "Big Network", purposes: [1, 2, 3, 4, 7, 9], legIntPurposes: [10] },
  ],
};
const all = { necessary: true, analytics: true, personalization: true, advertising: true };
const none = { necessary: true, analytics: false, personalization: false, advertising: false };
const day = Date.UTC(2026, 10, 29);
const ids = (s: Set<number>) => Array.from(s).sort((a, b) => a - b);

test("what we encode, @iabtcf/core decodes field by field (TCF v2.3 with disclosed vendors)", () => {
  const m = modelFor(cfg, { ...none, analytics: true }, "de", day + 3_600_000, day + 7_200_000);
  const tc = encode(m);
  assert.equal(tc.split(".").length, 3, "core, disclosed vendors, publisher TC");
  const theirs = TCString.decode(tc);
  assert.equal(theirs.version, 2);
  assert.equal(theirs.cmpId, 300);
  assert.equal(theirs.cmpVersion, 2);
  assert.equal(theirs.consentScreen, 1);
  assert.equal(theirs.consentLanguage, "DE");
  assert.equal(theirs.vendorListVersion, 150);
  assert.equal(theirs.policyVersion, TCF_POLICY_VERSION);
  assert.equal(theirs.isServiceSpecific, true);
  assert.equal(theirs.publisherCountryCode, "FR");
  assert.equal(theirs.created.getTime(), day, "day precision");
  assert.equal(theirs.lastUpdated.getTime(), day);
  assert.deepEqual(ids(new Set(theirs.purposeConsents.values())), [1, 8, 10]);
  assert.deepEqual(ids(new Set(theirs.vendorConsents.values())), [8]);
  assert.deepEqual(ids(new Set(theirs.vendorsDisclosed.values())), [1, 8, 755]);
  assert.deepEqual(ids(new Set(theirs.purposeLegitimateInterests.values())), [10]);
  assert.deepEqual(ids(new Set(theirs.vendorLegitimateInterests.values())), [755]);
  assert.deepEqual(ids(new Set(theirs.publisherConsents.values())), [1, 8]);
  assert.equal(theirs.specialFeatureOptins.size, 0);
});

test("accept all grants every purpose, vendor and special feature; reject all grants none", () => {
  const yes = TCString.decode(encode(modelFor(cfg, all, "en", day, day)));
  assert.deepEqual(ids(new Set(yes.purposeConsents.values())), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(ids(new Set(yes.vendorConsents.values())), [1, 8, 755]);
  assert.deepEqual(ids(new Set(yes.specialFeatureOptins.values())), [1]);
  const no = TCString.decode(encode(modelFor(cfg, none, "en", day, day)));
  assert.equal(no.purposeConsents.size, 0);
  assert.equal(no.vendorConsents.size, 0);
  assert.equal(no.purposeLegitimateInterests.size, 0, "a refusal objects to legitimate interest too");
  assert.equal(no.vendorLegitimateInterests.size, 0);
  assert.deepEqual(ids(new Set(no.vendorsDisclosed.values())), [1, 8, 755]);
});

/** The TC string @iabtcf/core writes for the same choices, to be read by our decoder. */
function theirString(): string {
  const gvl = new GVL({
    gvlSpecificationVersion: 3,
    vendorListVersion: 150,
    tcfPolicyVersion: 4,
    lastUpdated: "2026-11-26T16:00:00Z",
    purposes: Object.fromEntries(
      Array.from({ length: 11 }, (_, i) => [i + 1, { id: i + 1, name: `P${i + 1}`, description: "", illustrations: [] }]),
    ),
    specialPurposes: {},
    features: {},
    specialFeatures: { 1: { id: 1, name: "SF1", description: "", illustrations: [] } },
    stacks: {},
    dataCategories: {},
    vendors: Object.fromEntries(
      [3, 4, 5, 6, 7, 300, 2000].map((id) => [
        id,
        { id, name: `V${id}`, purposes: [1], legIntPurposes: [], flexiblePurposes: [], specialPurposes: [], features: [], specialFeatures: [], policyUrl: "https://example.com" },
      ]),
    ),
  } as never);
  const m = new IabModel(gvl);
  m.cmpId = 42;
  m.cmpVersion = 7;
  m.consentScreen = 3;
  m.consentLanguage = "FR";
  m.publisherCountryCode = "DE";
  m.isServiceSpecific = true;
  m.purposeConsents.set([1, 3, 9]);
  m.vendorConsents.set([3, 4, 5, 6, 7, 2000]);
  m.specialFeatureOptins.set(1);
  m.publisherConsents.set([1, 2]);
  m.vendorsDisclosed.set([3, 4, 5, 6, 7, 300, 2000]);
  return TCString.encode(m, { segments: ["core", "vendorsDisclosed", "publisherTC"] } as never);
}

test("what @iabtcf/core encodes, we decode (ranges, disclosed vendors, publisher TC)", () => {
  const tc = theirString();
  const m = decode(tc);
  assert.equal(m.cmpId, 42);
  assert.equal(m.cmpVersion, 7);
  assert.equal(m.consentScreen, 3);
  assert.equal(m.consentLanguage, "EN", "@iabtcf/core writes its GVL's language");
  assert.equal(m.publisherCC, "DE");
  assert.equal(m.vendorListVersion, 150);
  assert.equal(m.isServiceSpecific, true);
  assert.deepEqual(ids(m.purposeConsents), [1, 3, 9]);
  assert.deepEqual(ids(m.vendorConsents), [3, 4, 5, 6, 7, 2000]);
  assert.deepEqual(ids(m.specialFeatureOptins), [1]);
  assert.deepEqual(ids(m.disclosedVendors), [3, 4, 5, 6, 7, 300, 2000]);
  assert.deepEqual(ids(m.publisher!.consents), [1, 2]);
  // And our encoding of what we decoded is read back the same by them.
  const again = TCString.decode(encode(m));
  assert.deepEqual(ids(new Set(again.vendorConsents.values())), [3, 4, 5, 6, 7, 2000]);
});

test("vendors go as ranges or as a bitfield, whichever is shorter", () => {
  const base = modelFor(cfg, all, "en", day, day);
  const sparse: TCModel = { ...base, vendorConsents: new Set([2, 3, 4, 5, 900]) };
  const dense: TCModel = { ...base, vendorConsents: new Set([1, 3, 5, 7, 9]) };
  const core = (m: TCModel) => encode(m).split(".")[0];
  const withoutConsents = core({ ...base, vendorConsents: new Set() }).length;
  // Sparse high ids: 12 + 33 + 17 bits of ranges (about 11 characters), not a 900-bit field.
  assert.ok(core(sparse).length - withoutConsents <= 12, `${core(sparse).length - withoutConsents} chars`);
  // Five low ids: a 9-bit field beats five 17-bit ranges.
  assert.ok(core(dense).length - withoutConsents <= 2, `${core(dense).length - withoutConsents} chars`);
  assert.deepEqual(ids(decode(encode(sparse)).vendorConsents), [2, 3, 4, 5, 900]);
  assert.deepEqual(ids(decode(encode(dense)).vendorConsents), [1, 3, 5, 7, 9]);
  assert.deepEqual(ids(new Set(TCString.decode(encode(sparse)).vendorConsents.values())), [2, 3, 4, 5, 900]);
});

test("malformed TC strings are refused with a clear error", () => {
  assert.throws(() => decode("not*base64"), /invalid character/);
  assert.throws(() => decode("CQ"), /ends too early/);
  assert.throws(() => decode("BAAAAAAA"), /version/);
});

test("purpose 1 comes with any optional purpose", () => {
  assert.deepEqual(ids(grantedTcfPurposes(none)), []);
  assert.ok(grantedTcfPurposes({ ...none, analytics: true }).has(1));
});

test("the protocol's banner fixture carries a TC string both decoders read alike", () => {
  const fixture = JSON.parse(readFileSync(new URL("../../../protocol/fixtures/consent-record-banner.json", import.meta.url), "utf8"));
  const ours = decode(fixture.tcf);
  const theirs = TCString.decode(fixture.tcf);
  assert.deepEqual(ids(ours.vendorConsents), ids(new Set(theirs.vendorConsents.values())));
  assert.deepEqual(ids(ours.disclosedVendors), [8, 755]);
  assert.equal(ours.consentLanguage, fixture.locale.toUpperCase());
});
