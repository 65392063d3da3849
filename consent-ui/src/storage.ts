import type { Stored } from "./types";

/**
 * First-party storage. localStorage when the browser allows it, else a cookie for the
 * consent state (the queue then lives in memory only). Nothing but the consent state is
 * written before a purpose is granted; the caller decides when.
 */
const STATE = "assent";
const COOKIE_MAX_AGE = 395 * 24 * 3600;

function local(): Storage | null {
  try {
    const s = window.localStorage;
    s.setItem("assent_t", "1");
    s.removeItem("assent_t");
    return s;
  } catch {
    return null;
  }
}

export function readCookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const i = part.indexOf("=");
    if (part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return null;
}

export function loadState(): Stored | null {
  try {
    const raw = local()?.getItem(STATE) ?? readCookie(STATE);
    const s = raw ? (JSON.parse(raw) as Stored) : null;
    return s && s.v === 1 && typeof s.id === "string" && s.purposes ? s : null;
  } catch {
    return null;
  }
}

export function saveState(s: Stored | null): void {
  const l = local();
  const secure = location.protocol === "https:" ? "; Secure" : "";
  if (l) {
    if (s) l.setItem(STATE, JSON.stringify(s));
    else l.removeItem(STATE);
  } else {
    document.cookie = s
      ? `${STATE}=${encodeURIComponent(JSON.stringify(s))}; Path=/; Max-Age=${COOKIE_MAX_AGE}; SameSite=Lax${secure}`
      : `${STATE}=; Path=/; Max-Age=0`;
  }
}

/** A list kept under `key` (the event queue, the consent outbox). */
export function loadList<T>(key: string): T[] {
  try {
    const v = JSON.parse(local()?.getItem(key) ?? "[]");
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

export function saveList<T>(key: string, items: T[]): void {
  const l = local();
  if (!l) return;
  try {
    if (items.length) l.setItem(key, JSON.stringify(items));
    else l.removeItem(key);
  } catch {
    /* quota: the items stay in memory */
  }
}
