import type { ConsentModeState, Purposes } from "./types";

type Gtag = (...args: unknown[]) => void;

/** `gtag`, defining the standard stub that queues into `dataLayer` when the page has none. */
export function gtag(): Gtag {
  const w = window as unknown as { dataLayer?: unknown[]; gtag?: Gtag };
  w.dataLayer = w.dataLayer || [];
  if (!w.gtag) {
    w.gtag = function () {
      // gtag.js reads the `arguments` object itself, not an array.
      // eslint-disable-next-line prefer-rest-params
      w.dataLayer!.push(arguments);
    };
  }
  return w.gtag;
}

const g = (on: boolean) => (on ? "granted" : "denied");

/** Assent's purposes mapped onto Google Consent Mode v2's seven types. */
export function toConsentMode(p: Purposes): ConsentModeState {
  return {
    ad_storage: g(p.advertising),
    ad_user_data: g(p.advertising),
    ad_personalization: g(p.advertising),
    analytics_storage: g(p.analytics),
    personalization_storage: g(p.personalization),
    functionality_storage: "granted",
    security_storage: "granted",
  };
}

export const ALL_DENIED: ConsentModeState = {
  ad_storage: "denied",
  ad_user_data: "denied",
  ad_personalization: "denied",
  analytics_storage: "denied",
  personalization_storage: "denied",
  functionality_storage: "granted",
  security_storage: "granted",
};
