import { loadList, saveList } from "./storage";
import { backoff, post } from "./transport";
import type { Purpose, Purposes } from "./types";
import { iso, uuidv7 } from "./util";

declare const __ASSENT_VERSION__: string;

/** One event of the protocol's envelope. */
export interface WireEvent {
  type: "track" | "page" | "identify";
  messageId: string;
  anonymousId: string;
  userId?: string;
  event?: string;
  name?: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  purpose: Purpose;
  timestamp: string;
  context: Record<string, unknown>;
}

const QUEUE = "assent_q";
const MAX_QUEUE = 1000;
/** Most consent records in one batch: the collector refuses more (protocol v1). */
const MAX_CONSENT_IN_BATCH = 100;

export interface TrackerHost {
  /** The current consent, or null before any decision. */
  purposes(): Purposes | null;
  /** The pseudonymous id and the (peppered) user id. */
  ids(): { anonymousId: string; userId?: string } | null;
  /** Consent records not yet acknowledged: they travel in the same batch as the events,
   *  so an event never arrives before the consent that allows it. */
  pendingConsent(): readonly unknown[];
  now(): number;
}

/**
 * The site's own events, under the same rules as the SDK: nothing is queued or stored
 * before the event's purpose is granted; each event gets its messageId once, so a retry
 * never becomes a second event; batches go by count, by time, and when the page is hidden.
 */
export class Tracker {
  private queue: WireEvent[] = [];
  private inflight = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private attempt = 0;
  private paused = false;
  private maxBatch = 100;

  constructor(
    private host: TrackerHost,
    private endpoint: string,
    private writeKey: string,
    private flushAt: number,
    private intervalMs: number,
  ) {
    if (host.purposes()) this.queue = loadList<WireEvent>(QUEUE);
    const hide = () => void this.flush();
    addEventListener("pagehide", hide);
    document.addEventListener("visibilitychange", () => document.visibilityState === "hidden" && hide());
    this.schedule();
  }

  get size(): number {
    return this.queue.length;
  }

  /** Queues an event when `purpose` is granted; returns whether it was. */
  enqueue(partial: Omit<WireEvent, "messageId" | "anonymousId" | "timestamp" | "context">): boolean {
    const granted = this.host.purposes();
    const ids = this.host.ids();
    if (!granted || !ids || !granted[partial.purpose]) return false;
    if (partial.type === "track" && (typeof partial.event !== "string" || !partial.event)) {
      console.error("assent: track needs an event name");
      return false;
    }
    try {
      // Only JSON travels: functions and undefined are dropped now, cycles refused now,
      // rather than failing a whole batch later.
      partial = JSON.parse(JSON.stringify(partial));
    } catch {
      console.error("assent: event properties must be JSON (no cycles, no BigInt)");
      return false;
    }
    const now = this.host.now();
    const e: WireEvent = {
      ...partial,
      messageId: uuidv7(now),
      anonymousId: ids.anonymousId,
      userId: ids.userId,
      timestamp: iso(now),
      context: {
        library: { name: "assent-web", version: __ASSENT_VERSION__ },
        locale: navigator.language,
        page: pageContext(),
      },
    };
    this.queue.push(e);
    if (this.queue.length > MAX_QUEUE) this.queue.splice(0, this.queue.length - MAX_QUEUE);
    saveList(QUEUE, this.queue);
    if (this.queue.length >= this.flushAt) void this.flush();
    else this.schedule();
    return true;
  }

  /** Drops queued events whose purpose is no longer granted (withdrawal). */
  prune(p: Purposes): void {
    this.queue = this.queue.filter((e) => p[e.purpose]);
    saveList(QUEUE, this.queue);
  }

  /** A flush after the flush interval, unless one is already due. */
  private schedule(): void {
    if (this.timer === undefined && this.queue.length) this.flushIn(this.intervalMs);
  }

  /** A flush in `ms`, replacing the one that was due. */
  private flushIn(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ms);
  }

  /** Sends what is queued, in batches; resolves when the attempt is over. */
  async flush(): Promise<void> {
    if (this.paused) return;
    const batch = this.queue.filter((e) => !this.inflight.has(e.messageId)).slice(0, this.maxBatch);
    if (!batch.length) return;
    batch.forEach((e) => this.inflight.add(e.messageId));
    // The collector takes at most MAX_CONSENT_IN_BATCH records a request; the newest are
    // the ones events of this batch can need (the outbox delivers every record anyway).
    const consent = this.host.pendingConsent().slice(-MAX_CONSENT_IN_BATCH);
    const out = await post(`${this.endpoint}/v1/batch`, {
      batch,
      ...(consent.length ? { consent } : {}),
      sentAt: iso(this.host.now()),
      writeKey: this.writeKey,
    });
    batch.forEach((e) => this.inflight.delete(e.messageId));
    if (!out.ok && out.status === 413 && batch.length > 1) {
      this.maxBatch = Math.ceil(batch.length / 2);
      return this.flush();
    }
    if (!out.ok && (out.status === 401 || out.status === 403)) {
      this.paused = true; // a wrong or revoked write key: keep the events, stop until the next page
      console.error(`assent: the collector refused the write key (${out.status})`);
      return;
    }
    if (out.ok || out.permanent) {
      // Events the collector rejected one by one are kept in its dead-letter table.
      const sent = new Set(batch.map((e) => e.messageId));
      this.queue = this.queue.filter((e) => !sent.has(e.messageId));
      saveList(QUEUE, this.queue);
      this.attempt = 0;
      if (this.queue.length >= this.flushAt) return this.flush();
      this.schedule();
      return;
    }
    this.flushIn(out.retryAfterMs ?? backoff(this.attempt++));
  }

  /** Forgets every queued event (full withdrawal or reset). */
  clear(): void {
    this.queue = [];
    saveList(QUEUE, []);
  }
}

/** Where the event happened, without the query string or fragment (they often carry ids). */
function pageContext(): Record<string, string> {
  const ref = document.referrer ? new URL(document.referrer) : null;
  return {
    path: location.pathname,
    url: location.origin + location.pathname,
    title: document.title,
    referrer: ref ? ref.origin + ref.pathname : "",
  };
}
