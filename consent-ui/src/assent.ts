import { Banner, type Choice } from "./banner";
import { deleteCookies, activateScripts } from "./blocker";
import { ALL_DENIED, gtag, toConsentMode } from "./consent-mode";
import { en } from "./lang/en";
import { load } from "./modules";
import { loadList, loadState, saveList, saveState } from "./storage";
import type { TcfModule } from "./tcf";
import type { CmpApi } from "./tcf/cmpapi";
import { installTcfStub } from "./tcf-stub";
import { Tracker } from "./tracker";
import { post, Outbox } from "./transport";
import type { ConsentRecord, Config, Method, Optional, Purposes, Stored, Texts } from "./types";
import { OPTIONAL } from "./types";
import { canonicalJson, iso, pepperUserId, randomId, sha256Hex, uuidv7 } from "./util";

declare const __ASSENT_VERSION__: string;

/** Consent is asked again after 13 months (TCF policy; also what the CNIL recommends at most). */
export const MAX_AGE_MS = 395 * 24 * 3600 * 1000;
export const LANGUAGES = ["en", "de", "fr"];

const none = (): Purposes => ({ necessary: true, analytics: false, personalization: false, advertising: false });
const anyOptional = (p?: Purposes | null) => !!p && OPTIONAL.some((k) => p[k]);

/** The page language, else the browser's, among those the banner speaks. */
export function pickLanguage(wanted: (string | undefined)[]): string {
  for (const w of wanted) {
    const l = (w || "").toLowerCase().split("-")[0];
    if (LANGUAGES.includes(l)) return l;
  }
  return "en";
}

/**
 * The banner and tracker of one page. Created synchronously as early as possible (it sets
 * the Consent Mode defaults before any tag runs), then `start()` shows the banner or
 * applies the stored choice.
 */
/** A list's id as the collector names it: `NAME.VERSION.HASH` (protocol's `RecId`). */
function isRecId(v: unknown): v is string {
  return typeof v === "string" && /^[^.\s]+\.[1-9][0-9]*\.[0-9a-f]{32}$/.test(v);
}

export class Assent {
  readonly cfg: Config;
  readonly gpc: boolean;
  lang: string;
  private state: Stored | null;
  private texts: Texts = en;
  private banner?: Banner;
  private tracker: Tracker;
  private outbox: Outbox<ConsentRecord>;
  private tcf?: Promise<TcfModule>;
  private cmp?: CmpApi;
  private listeners: ((p: Purposes) => void)[] = [];
  private now: () => number;

  constructor(cfg: Config, now: () => number = Date.now) {
    this.cfg = cfg;
    this.now = now;
    this.gpc = (navigator as { globalPrivacyControl?: boolean }).globalPrivacyControl === true;
    this.lang = pickLanguage([cfg.lang, document.documentElement.lang, ...navigator.languages]);
    const stored = loadState();
    this.state = stored;
    const g = gtag();
    for (const d of cfg.consentModeDefaults) {
      g("consent", "default", { ...ALL_DENIED, ...d.state, region: d.region, wait_for_update: cfg.waitForUpdate });
    }
    g("consent", "default", { ...ALL_DENIED, wait_for_update: cfg.waitForUpdate });
    if (this.current()) g("consent", "update", toConsentMode(stored!.purposes));
    if (cfg.tcf) installTcfStub(cfg.tcf.gdprApplies !== false);
    this.outbox = new Outbox<ConsentRecord>(
      loadList("assent_out"),
      (items) => saveList("assent_out", items),
      (r) => post(`${cfg.endpoint}/v1/consent`, { ...r, writeKey: cfg.writeKey }),
    );
    this.tracker = new Tracker(
      {
        purposes: () => (this.current() ? this.state!.purposes : null),
        ids: () => (this.state ? { anonymousId: this.state.id, userId: this.state.user } : null),
        pendingConsent: () => this.outbox.pending,
        now: this.now,
      },
      cfg.endpoint,
      cfg.writeKey,
      cfg.flushAt,
      cfg.flushIntervalMs,
    );
  }

  /** Whether the stored choice answers the current policy and is younger than 13 months. */
  current(): boolean {
    const s = this.state;
    return !!s && s.policyVersion === this.cfg.policyVersion && this.now() - s.at < MAX_AGE_MS;
  }

  /** The choice in force; every optional purpose denied before a decision. */
  consent(): Purposes {
    return this.current() ? { ...this.state!.purposes } : none();
  }

  on(f: (p: Purposes) => void): void {
    this.listeners.push(f);
  }

  async start(): Promise<void> {
    this.outbox.kick();
    if (this.cfg.tcf) {
      this.tcf = load<TcfModule>(this.cfg.base, "tcf");
      this.tcf.then((m) => {
        this.cmp = new m.CmpApi(this.cfg.tcf!);
        // The module may arrive before or after the banner opens: say which it is.
        const shown = !!this.banner?.open;
        this.cmp.update(this.currentTc(), shown ? "cmpuishown" : "tcloaded", shown);
      }, console.error);
    }
    if (this.current()) {
      const s = this.state!;
      if (this.gpc && s.purposes.advertising) {
        await this.loadTexts();
        await this.record({ ...s.purposes, advertising: false }, "gpc", { layer: "signal", control: "gpc" });
      } else this.apply(s.purposes);
    } else if (this.state && anyOptional(this.state.purposes)) {
      // The policy changed or the choice expired: optional purposes stop until asked again.
      await this.loadTexts();
      await this.record(none(), "policy_change", { layer: "signal", control: "policy_change" }, {
        keepUndecided: true,
      });
    }
    await this.loadTexts();
    this.banner = new Banner(this.cfg, this.texts, this.lang, this.gpc, (c) => void this.choose(c));
    if (this.current()) this.banner.settingsButton(() => this.consent());
    else {
      this.banner.show(1);
      this.cmp?.update("", "cmpuishown", true);
    }
    this.bridgeDataLayer();
  }

  private async loadTexts(): Promise<void> {
    let base: Texts = en;
    if (this.lang !== "en") {
      try {
        base = await load<Texts>(this.cfg.base, `lang-${this.lang}`);
      } catch (e) {
        console.error(e);
        this.lang = "en";
      }
    }
    const o = this.cfg.texts[this.lang] || {};
    this.texts = { ...base, ...o, purpose: { ...base.purpose, ...(o.purpose || {}) } };
  }

  /** Opens the preferences layer with the current choice ticked. */
  showPreferences(): void {
    this.banner?.show(2, this.current() ? this.state!.purposes : null);
    this.cmp?.update(this.currentTc(), "cmpuishown", true);
  }

  private currentTc(): string {
    return this.current() ? this.state!.tc || "" : "";
  }

  private async choose(c: Choice): Promise<void> {
    let method = c.method;
    // GPC turned an "accept all" into "all but advertising": say so in the record.
    if (this.gpc && method === "accept_all") method = "gpc";
    // Refusing everything after having agreed to something is a withdrawal.
    if (method === "reject_all" && this.current() && anyOptional(this.state!.purposes)) method = "withdraw";
    await this.record(c.purposes, method, c.interaction);
    this.banner?.settingsButton(() => this.consent());
  }

  /** What the visitor was shown, hashed into `noticeHash`. */
  notice(): unknown {
    const t = this.cfg.tcf;
    return {
      uiVersion: __ASSENT_VERSION__,
      locale: this.lang,
      policyVersion: this.cfg.policyVersion,
      texts: this.texts,
      purposes: this.cfg.purposes,
      vendors: this.cfg.vendors,
      tcf: t && { vendorListVersion: t.vendorListVersion, vendors: t.vendors },
      gpc: this.gpc,
    };
  }

  /**
   * Records a choice: stored, posted to the collector (retried until acknowledged), then
   * applied. A full withdrawal retires the pseudonymous id and the queued events.
   */
  private async record(
    purposes: Purposes,
    method: Method,
    interaction: ConsentRecord["interaction"],
    opts: { keepUndecided?: boolean; fresh?: boolean } = {},
  ): Promise<void> {
    const keepUndecided = !!opts.keepUndecided;
    const now = this.now();
    const previous = opts.fresh ? undefined : this.state?.purposes;
    const id = this.state?.id || randomId();
    const p: Purposes = { ...purposes, necessary: true };
    let tc: string | undefined;
    if (this.tcf && this.cfg.tcf) {
      try {
        const m = await this.tcf;
        const created = this.state?.tc ? m.decode(this.state.tc).created.getTime() : now;
        tc = m.encode(m.modelFor(this.cfg.tcf, p, this.lang, created, now));
      } catch (e) {
        // The choice still counts, is stored and applied; only the TC string is missing.
        console.error("assent: no TC string for this choice:", e);
      }
    }
    const record: ConsentRecord = {
      consentId: uuidv7(now),
      subjectId: id,
      userId: this.state?.user,
      purposes: p,
      policyVersion: keepUndecided ? this.state!.policyVersion : this.cfg.policyVersion,
      method,
      source: "banner",
      timestamp: iso(now),
      gpc: this.gpc,
      locale: this.lang,
      tcf: tc,
      uiVersion: __ASSENT_VERSION__,
      noticeHash: await sha256Hex(canonicalJson(this.notice())),
      interaction,
      previous,
    };
    if (!record.userId) delete record.userId;
    if (!record.noticeHash) delete record.noticeHash;
    if (!tc) delete record.tcf;
    if (!previous) delete record.previous;
    this.outbox.push(record);
    // A policy change pauses purposes but is not the person's withdrawal: the id stays.
    const withdrawn = method !== "policy_change" && anyOptional(previous) && !anyOptional(p);
    this.state = {
      v: 1,
      // After a full withdrawal the old id is never used again: the next one is unlinkable.
      id: withdrawn ? randomId() : id,
      purposes: p,
      policyVersion: record.policyVersion,
      at: keepUndecided ? this.state!.at : now,
      tc,
      user: withdrawn || !p.analytics ? undefined : this.state?.user,
    };
    saveState(this.state);
    if (withdrawn) this.tracker.clear();
    this.apply(p);
    this.cmp?.update(tc || "", "useractioncomplete", false);
  }

  /** Tells Google tags, runs the scripts now allowed, removes the cookies now refused. */
  private apply(p: Purposes): void {
    gtag()("consent", "update", toConsentMode(p));
    this.tracker.prune(p);
    const refused = OPTIONAL.filter((k) => !p[k]);
    const patterns: string[] = [];
    for (const k of refused) {
      patterns.push(...(this.cfg.cookies[k] || []));
      for (const v of this.cfg.vendors) if (v.purposes.includes(k)) patterns.push(...(v.cookies || []));
    }
    deleteCookies(patterns);
    activateScripts(p);
    this.listeners.forEach((f) => f({ ...p }));
  }

  track(event: string, properties: Record<string, unknown> = {}, purpose: Optional = "analytics"): boolean {
    return this.tracker.enqueue({ type: "track", event, properties, purpose });
  }

  /**
   * The impression of a recommendation list: `recId` is the `recId` of the collector's
   * answer, so the view counts for the model version that ranked it (click-through per
   * version). Needs analytics; false, sending nothing, for an id that is not a recId.
   */
  recommendationViewed(recId: string, properties: Record<string, unknown> = {}): boolean {
    if (!isRecId(recId)) return false;
    return this.track("Recommendation Viewed", { ...properties, rec_id: recId });
  }

  /** A click on `itemId` in the list `recId` (as `recommendationViewed`). */
  recommendationClicked(recId: string, itemId: string, properties: Record<string, unknown> = {}): boolean {
    if (!isRecId(recId) || typeof itemId !== "string" || !itemId.trim()) return false;
    return this.track("Recommendation Clicked", { ...properties, rec_id: recId, item_id: itemId });
  }

  /**
   * Asks the collector which variant of content slot `slot` this visitor gets (their
   * experiment variant, a targeted one with personalization consent, else the
   * fallback) and, given an element, puts the block's HTML (rendered and escaped by the
   * collector) in it. Resolves with the answer, or null (the element left as it was)
   * when the slot is unknown or the collector cannot be reached. Before a decision the
   * visitor's id is not sent: they get the fallback.
   */
  async content(slot: string, element?: Element | null): Promise<Record<string, unknown> | null> {
    if (typeof slot !== "string" || !/^[a-z0-9_-]{1,64}$/.test(slot)) return null;
    const subject = this.current() ? this.state!.id : "";
    const url = `${this.cfg.endpoint}/v1/content/${slot}${subject ? `?subject=${encodeURIComponent(subject)}` : ""}`;
    try {
      const r = await fetch(url, { headers: { authorization: `Basic ${btoa(`${this.cfg.writeKey}:`)}` }, credentials: "omit" });
      if (!r.ok) return null;
      const answer = (await r.json()) as Record<string, unknown>;
      if (element && typeof answer.html === "string") element.innerHTML = answer.html;
      return answer;
    } catch {
      return null;
    }
  }

  /**
   * Flag `key` for this visitor, as the collector evaluates it (OpenFeature details:
   * `{value, variant, reason, errorCode}`); `defaultValue` on any error, and when the
   * collector cannot be reached (`reason: "ERROR"`). Before a decision the visitor's id
   * is not sent.
   */
  async flag(key: string, defaultValue: unknown = null): Promise<Record<string, unknown>> {
    const fallback = (code: string) => ({ value: defaultValue, reason: "ERROR", errorCode: code });
    if (typeof key !== "string" || !key) return fallback("FLAG_NOT_FOUND");
    const q = new URLSearchParams({ default: JSON.stringify(defaultValue) ?? "null" });
    if (this.current()) q.set("subject", this.state!.id);
    try {
      const r = await fetch(`${this.cfg.endpoint}/v1/flags/${encodeURIComponent(key)}?${q}`, {
        headers: { authorization: `Basic ${btoa(`${this.cfg.writeKey}:`)}` },
        credentials: "omit",
      });
      if (!r.ok) return fallback("GENERAL");
      return (await r.json()) as Record<string, unknown>;
    } catch {
      return fallback("GENERAL");
    }
  }

  page(name?: string, properties: Record<string, unknown> = {}): boolean {
    return this.tracker.enqueue({ type: "page", name: name || document.title, properties, purpose: "analytics" });
  }

  /** Sets the user id (peppered when `userIdPepper` is configured); needs analytics. */
  async identify(userId: string, traits: Record<string, unknown> = {}): Promise<boolean> {
    if (!this.current() || !this.state!.purposes.analytics) return false;
    const pepper = this.cfg.userIdPepper;
    this.state!.user = pepper ? await pepperUserId(pepper, userId) : userId;
    saveState(this.state);
    return this.tracker.enqueue({ type: "identify", traits, purpose: "analytics" });
  }

  /** A new, unlinkable id (logout); the consent given carries over to it. */
  async reset(): Promise<void> {
    if (!this.state) return;
    const decided = this.current();
    this.state = { ...this.state, id: randomId(), user: undefined };
    saveState(this.state);
    if (decided) await this.record(this.state.purposes, "custom", { layer: "api", control: "reset" }, { fresh: true });
  }

  flush(): Promise<void> {
    return this.tracker.flush();
  }

  /** Forwards `dataLayer.push({event})` of the configured names as track events. */
  private bridgeDataLayer(): void {
    const names = this.cfg.gtmEvents;
    if (!Object.keys(names).length) return;
    const w = window as unknown as { dataLayer?: unknown[] };
    const dl = (w.dataLayer ||= []);
    const forward = (item: unknown) => {
      const o = item as Record<string, unknown> | null;
      if (!o || typeof o !== "object" || typeof o.event !== "string" || !(o.event in names)) return;
      const props: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(o)) {
        if (k !== "event" && !k.startsWith("gtm.") && (v === null || typeof v !== "object")) props[k] = v;
      }
      this.track(o.event, props, names[o.event]);
    };
    dl.forEach(forward);
    const push = dl.push.bind(dl);
    dl.push = (...items: unknown[]) => {
      items.forEach(forward);
      return push(...items);
    };
  }
}
