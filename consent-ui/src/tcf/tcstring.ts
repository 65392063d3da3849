import { BitReader, BitWriter } from "./bits";

/** TCF Policy version of the current specification (TCF v2.3: policy v5). */
export const TCF_POLICY_VERSION = 5;

/** Everything a TC string carries, in plain values. */
export interface TCModel {
  created: Date;
  lastUpdated: Date;
  cmpId: number;
  cmpVersion: number;
  consentScreen: number;
  consentLanguage: string;
  vendorListVersion: number;
  policyVersion: number;
  isServiceSpecific: boolean;
  useNonStandardTexts: boolean;
  specialFeatureOptins: Set<number>;
  purposeConsents: Set<number>;
  purposeLegitimateInterests: Set<number>;
  purposeOneTreatment: boolean;
  publisherCC: string;
  vendorConsents: Set<number>;
  vendorLegitimateInterests: Set<number>;
  /** Vendors shown to the person (segment 1; mandatory since TCF v2.3). */
  disclosedVendors: Set<number>;
  /** Publisher TC segment (segment 3), when present. */
  publisher?: {
    consents: Set<number>;
    legitimateInterests: Set<number>;
    customConsents: Set<number>;
    customLegitimateInterests: Set<number>;
    numCustomPurposes: number;
  };
}

const deciseconds = (d: Date) => Math.round(d.getTime() / 100);

function letters(w: BitWriter, code: string): void {
  const c = code.toUpperCase();
  if (!/^[A-Z]{2}$/.test(c)) throw new RangeError(`tcf: ${code} is not two letters`);
  w.int(c.charCodeAt(0) - 65, 6).int(c.charCodeAt(1) - 65, 6);
}

const readLetters = (r: BitReader) => String.fromCharCode(65 + r.int(6), 65 + r.int(6));

/** Consecutive runs of the sorted ids. */
function runs(ids: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const id of ids) {
    const last = out[out.length - 1];
    if (last && id === last[1] + 1) last[1] = id;
    else out.push([id, id]);
  }
  return out;
}

/** A vendor set, as a bitfield or as ranges, whichever is shorter (bitfield on a tie). */
function vendors(w: BitWriter, set: Set<number>): void {
  const ids = Array.from(set).sort((a, b) => a - b);
  const max = ids.length ? ids[ids.length - 1] : 0;
  const rs = runs(ids);
  const rangeBits = 12 + rs.reduce((n, [a, b]) => n + (a === b ? 17 : 33), 0);
  w.int(max, 16);
  if (rangeBits < max) {
    w.bool(true).int(rs.length, 12);
    for (const [a, b] of rs) {
      w.bool(a !== b).int(a, 16);
      if (a !== b) w.int(b, 16);
    }
  } else {
    w.bool(false).field(set, max);
  }
}

function readVendors(r: BitReader): Set<number> {
  const max = r.int(16);
  if (!r.bool()) return r.field(max);
  const s = new Set<number>();
  for (let n = r.int(12); n > 0; n--) {
    const isRange = r.bool();
    const a = r.int(16);
    const b = isRange ? r.int(16) : a;
    for (let i = a; i <= b; i++) s.add(i);
  }
  return s;
}

/** Encodes a TC string: core, disclosed vendors, and the publisher segment when given. */
export function encode(m: TCModel): string {
  const core = new BitWriter()
    .int(2, 6)
    .int(deciseconds(m.created), 36)
    .int(deciseconds(m.lastUpdated), 36)
    .int(m.cmpId, 12)
    .int(m.cmpVersion, 12)
    .int(m.consentScreen, 6);
  letters(core, m.consentLanguage);
  core
    .int(m.vendorListVersion, 12)
    .int(m.policyVersion, 6)
    .bool(m.isServiceSpecific)
    .bool(m.useNonStandardTexts)
    .field(m.specialFeatureOptins, 12)
    .field(m.purposeConsents, 24)
    .field(m.purposeLegitimateInterests, 24)
    .bool(m.purposeOneTreatment);
  letters(core, m.publisherCC);
  vendors(core, m.vendorConsents);
  vendors(core, m.vendorLegitimateInterests);
  core.int(0, 12); // no publisher restrictions
  const segments = [core.toBase64Url()];
  const disclosed = new BitWriter().int(1, 3);
  vendors(disclosed, m.disclosedVendors);
  segments.push(disclosed.toBase64Url());
  if (m.publisher) {
    const p = m.publisher;
    segments.push(
      new BitWriter()
        .int(3, 3)
        .field(p.consents, 24)
        .field(p.legitimateInterests, 24)
        .int(p.numCustomPurposes, 6)
        .field(p.customConsents, p.numCustomPurposes)
        .field(p.customLegitimateInterests, p.numCustomPurposes)
        .toBase64Url(),
    );
  }
  return segments.join(".");
}

/** Decodes a TC string made by any TCF v2 CMP. Throws on a malformed one. */
export function decode(tc: string): TCModel {
  const [coreText, ...rest] = tc.split(".");
  const r = new BitReader(coreText);
  const version = r.int(6);
  if (version !== 2) throw new Error(`tcf: version ${version} is not 2`);
  const m: TCModel = {
    created: new Date(r.int(36) * 100),
    lastUpdated: new Date(r.int(36) * 100),
    cmpId: r.int(12),
    cmpVersion: r.int(12),
    consentScreen: r.int(6),
    consentLanguage: readLetters(r),
    vendorListVersion: r.int(12),
    policyVersion: r.int(6),
    isServiceSpecific: r.bool(),
    useNonStandardTexts: r.bool(),
    specialFeatureOptins: r.field(12),
    purposeConsents: r.field(24),
    purposeLegitimateInterests: r.field(24),
    purposeOneTreatment: r.bool(),
    publisherCC: readLetters(r),
    vendorConsents: new Set(),
    vendorLegitimateInterests: new Set(),
    disclosedVendors: new Set(),
  };
  m.vendorConsents = readVendors(r);
  m.vendorLegitimateInterests = readVendors(r);
  for (const segment of rest) {
    const s = new BitReader(segment);
    const type = s.int(3);
    if (type === 1) m.disclosedVendors = readVendors(s);
    else if (type === 3) {
      const consents = s.field(24);
      const legitimateInterests = s.field(24);
      const n = s.int(6);
      m.publisher = {
        consents,
        legitimateInterests,
        numCustomPurposes: n,
        customConsents: s.field(n),
        customLegitimateInterests: s.field(n),
      };
    }
    // Type 2 (allowed vendors) is obsolete since TCF v2.2 and is skipped.
  }
  return m;
}
