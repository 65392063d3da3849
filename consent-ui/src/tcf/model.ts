import { grantedTcfPurposes } from "../tcf-purposes";
import type { Purposes, TcfConfig } from "../types";
import { TCF_POLICY_VERSION, type TCModel } from "./tcstring";

/** Purposes for which TCF v2.2+ allows legitimate interest. */
const LI_ALLOWED = [2, 7, 8, 9, 10, 11];

/**
 * The TC model for a choice. A vendor gets consent when every purpose it asks consent for
 * is granted; a denied Assent purpose also counts as an objection to legitimate interest
 * for its TCF purposes. Special features go with advertising. Created and updated are
 * stored at day precision, as the policy asks.
 */
export function modelFor(
  cfg: TcfConfig,
  p: Purposes,
  language: string,
  created: number,
  updated: number,
): TCModel {
  const day = (ms: number) => new Date(Math.floor(ms / 86_400_000) * 86_400_000);
  const granted = grantedTcfPurposes(p);
  const li = new Set<number>();
  const vendorConsents = new Set<number>();
  const vendorLi = new Set<number>();
  const specialFeatures = new Set<number>();
  for (const v of cfg.vendors) {
    if (v.purposes.every((n) => granted.has(n))) vendorConsents.add(v.id);
    const vLi = (v.legIntPurposes || []).filter((n) => LI_ALLOWED.includes(n) && granted.has(n));
    vLi.forEach((n) => li.add(n));
    if (vLi.length && vLi.length === (v.legIntPurposes || []).length) vendorLi.add(v.id);
    if (p.advertising) (v.specialFeatures || []).forEach((n) => specialFeatures.add(n));
  }
  const pub = cfg.publisherPurposes;
  return {
    created: day(created),
    lastUpdated: day(updated),
    cmpId: cfg.cmpId,
    cmpVersion: cfg.cmpVersion,
    consentScreen: 1,
    consentLanguage: /^[a-z]{2}/i.test(language) ? language.slice(0, 2).toUpperCase() : "EN",
    vendorListVersion: cfg.vendorListVersion,
    policyVersion: TCF_POLICY_VERSION,
    isServiceSpecific: true,
    useNonStandardTexts: false,
    specialFeatureOptins: specialFeatures,
    purposeConsents: granted,
    purposeLegitimateInterests: li,
    purposeOneTreatment: false,
    publisherCC: cfg.publisherCC || "AA",
    vendorConsents,
    vendorLegitimateInterests: vendorLi,
    disclosedVendors: new Set(cfg.vendors.map((v) => v.id)),
    publisher: pub
      ? {
          consents: new Set(pub.filter((n) => granted.has(n))),
          legitimateInterests: new Set(),
          customConsents: new Set(),
          customLegitimateInterests: new Set(),
          numCustomPurposes: 0,
        }
      : undefined,
  };
}
