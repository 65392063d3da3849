/** What a send attempt came to. */
export type Outcome = { ok: true } | { ok: false; status: number; retryAfterMs?: number; permanent: boolean };

/**
 * POSTs JSON to the collector as `text/plain` with the write key in the body: a "simple"
 * request, so no CORS preflight, and the same body `sendBeacon` would send. `keepalive`
 * lets it finish after the page is gone.
 */
export async function post(url: string, body: unknown): Promise<Outcome> {
  const text = JSON.stringify(body);
  try {
    const r = await fetch(url, {
      method: "POST",
      body: text,
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      keepalive: text.length < 60_000,
      credentials: "omit",
    });
    if (r.ok) return { ok: true };
    const ra = Number(r.headers.get("Retry-After"));
    // 408, 429 and 5xx are worth retrying; other 4xx would fail again the same way.
    const permanent = r.status < 500 && r.status !== 408 && r.status !== 429;
    return { ok: false, status: r.status, permanent, retryAfterMs: ra > 0 ? ra * 1000 : undefined };
  } catch {
    return { ok: false, status: 0, permanent: false };
  }
}

/** Full-jitter exponential backoff: 1 s, 2 s, 4 s… capped at 5 minutes. */
export function backoff(attempt: number, random = Math.random): number {
  return Math.floor(random() * Math.min(300_000, 1000 * 2 ** Math.min(attempt, 16)));
}

/**
 * Sends the items of a persisted list in order, retrying with backoff until each is
 * acknowledged. Items are removed only after a 2xx; one that fails permanently is dropped
 * (it would fail the same way forever) and reported on the console.
 */
export class Outbox<T> {
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private busy = false;

  constructor(
    private items: T[],
    private persist: (items: T[]) => void,
    private deliver: (item: T) => Promise<Outcome>,
  ) {}

  /** What is waiting to be delivered, oldest first. */
  get pending(): readonly T[] {
    return this.items;
  }

  push(item: T): void {
    this.items.push(item);
    this.persist(this.items);
    this.kick();
  }

  kick(): void {
    if (this.busy || !this.items.length) return;
    clearTimeout(this.timer);
    this.busy = true;
    void this.run();
  }

  private async run(): Promise<void> {
    while (this.items.length) {
      const item = this.items[0];
      const out = await this.deliver(item);
      if (out.ok || out.permanent) {
        if (!out.ok) console.error("assent: the collector refused a consent record for good");
        this.items.shift();
        this.persist(this.items);
        this.attempt = 0;
        continue;
      }
      this.busy = false;
      this.timer = setTimeout(() => this.kick(), out.retryAfterMs ?? backoff(this.attempt++));
      return;
    }
    this.busy = false;
  }
}
