/** The purposes of the Assent protocol. `necessary` is always granted. */
export const PURPOSES = ["necessary", "analytics", "personalization", "advertising"] as const;
export type Purpose = (typeof PURPOSES)[number];
/** The purposes a visitor chooses. */
export const OPTIONAL = ["analytics", "personalization", "advertising"] as const;
export type Optional = (typeof OPTIONAL)[number];

export type Purposes = Record<Purpose, boolean>;

export type Method = "accept_all" | "reject_all" | "custom" | "gpc" | "withdraw" | "policy_change";
export type Layer = "first" | "second" | "api" | "signal";

/** The protocol's consent record (protocol/schema/assent-v1.schema.json). */
export interface ConsentRecord {
  consentId: string;
  subjectId: string;
  userId?: string;
  purposes: Purposes;
  policyVersion: string;
  method: Method;
  source: "banner";
  timestamp: string;
  gpc?: boolean;
  locale?: string;
  tcf?: string;
  uiVersion: string;
  /** Absent only on pages served over plain http, where WebCrypto does not exist. */
  noticeHash?: string;
  interaction: { layer: Layer; control: string };
  previous?: Purposes;
}

/** What the browser keeps (first-party localStorage, or a cookie when it is unavailable). */
export interface Stored {
  v: 1;
  /** The pseudonymous id: subject of the consent records and `anonymousId` of events. */
  id: string;
  purposes: Purposes;
  policyVersion: string;
  /** When the visitor decided, ms since the epoch. */
  at: number;
  /** The TC string, when TCF is on. */
  tc?: string;
  /** The peppered user id set by `identify`, kept only while analytics is granted. */
  user?: string;
}

/** A vendor the site lists under a purpose (shown in the second layer). */
export interface Vendor {
  name: string;
  purposes: Optional[];
  /** Privacy policy address. */
  url?: string;
  /** Cookies it sets: exact names or `prefix*` patterns, deleted on reject or withdrawal. */
  cookies?: string[];
}

export interface TcfVendor {
  id: number;
  name: string;
  /** TCF purposes (1-11) it asks consent for. */
  purposes: number[];
  /** TCF purposes it claims legitimate interest for. */
  legIntPurposes?: number[];
  specialFeatures?: number[];
}

export interface TcfConfig {
  cmpId: number;
  cmpVersion: number;
  vendorListVersion: number;
  /** Publisher country code, two letters. */
  publisherCC?: string;
  vendors: TcfVendor[];
  /** Whether GDPR applies to this visitor, as told to vendors (default true). */
  gdprApplies?: boolean;
  /** Purposes the publisher itself uses (publisher TC segment), by consent. */
  publisherPurposes?: number[];
}

export type ConsentModeKey =
  | "ad_storage"
  | "ad_user_data"
  | "ad_personalization"
  | "analytics_storage"
  | "personalization_storage"
  | "functionality_storage"
  | "security_storage";
export type ConsentModeState = Record<ConsentModeKey, "granted" | "denied">;

export interface Config {
  writeKey: string;
  policyVersion: string;
  /** Collector origin; defaults to the origin the script was loaded from. */
  endpoint: string;
  /** Where the on-demand modules are loaded from (the script's folder). */
  base: string;
  purposes: Optional[];
  vendors: Vendor[];
  /** Extra cookies to delete per purpose on reject or withdrawal. */
  cookies: Partial<Record<Optional, string[]>>;
  texts: Record<string, Partial<Texts>>;
  lang?: string;
  theme: { accent: string; background: string; text: string };
  /** Consent Mode defaults per region (ISO 3166 codes); all denied when absent. */
  consentModeDefaults: { region?: string[]; state: Partial<ConsentModeState> }[];
  waitForUpdate: number;
  tcf?: TcfConfig;
  /** dataLayer event name -> purpose, forwarded as track events. */
  gtmEvents: Record<string, Optional>;
  /** Pepper for `identify` (16+ bytes): the user id is sent as HMAC-SHA256(pepper, id). */
  userIdPepper?: string;
  flushAt: number;
  flushIntervalMs: number;
  /** Show the floating "privacy settings" button after a decision. */
  settingsButton: boolean;
}

export interface Texts {
  title: string;
  body: string;
  gpcNote: string;
  acceptAll: string;
  rejectAll: string;
  customize: string;
  save: string;
  prefsTitle: string;
  prefsBody: string;
  settings: string;
  alwaysOn: string;
  vendors: string;
  tcfNote: string;
  purpose: Record<Purpose, { name: string; description: string }>;
}
