import type { Optional, Purposes } from "./types";

/**
 * Runs `<script type="text/plain" data-assent-purpose="…">` once its purpose is granted:
 * each is replaced by a real script element (the only way a browser runs it), and marked
 * so that it never runs twice.
 */
export function activateScripts(granted: Purposes, root: ParentNode = document): number {
  let n = 0;
  root.querySelectorAll<HTMLScriptElement>('script[type="text/plain"][data-assent-purpose]').forEach((old) => {
    const purposes = (old.dataset.assentPurpose || "").split(/[\s,]+/).filter(Boolean) as Optional[];
    if (old.dataset.assentDone || !purposes.length || !purposes.every((p) => granted[p])) return;
    old.dataset.assentDone = "1";
    const s = document.createElement("script");
    for (const a of Array.from(old.attributes)) {
      if (a.name !== "type" && a.name !== "data-assent-purpose") s.setAttribute(a.name, a.value);
    }
    const type = old.dataset.assentType;
    if (type) s.type = type;
    if (!old.src) s.text = old.text;
    old.replaceWith(s);
    n++;
  });
  return n;
}

/** Whether a cookie name matches a configured name or `prefix*` pattern. */
export function matches(name: string, pattern: string): boolean {
  return pattern.endsWith("*") ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

/** Every domain a cookie may have been set on from this host: the host and its parents. */
export function domainsOf(host: string): string[] {
  const parts = host.split(".");
  if (/^[\d.]+$/.test(host) || parts.length < 2) return [host];
  const out: string[] = [];
  for (let i = 0; i < parts.length - 1; i++) out.push(parts.slice(i).join("."));
  return out;
}

/** Every path a cookie visible here may have been set on: `/`, `/a`, `/a/`, `/a/b`… */
export function pathsOf(pathname: string): string[] {
  const out = new Set<string>(["/"]);
  const segs = pathname.split("/").filter(Boolean);
  let p = "";
  for (const s of segs) {
    p += "/" + s;
    out.add(p);
    out.add(p + "/");
  }
  return Array.from(out);
}

/**
 * Deletes the cookies matching `patterns` on every path and parent domain they may have
 * been set on (a cookie is only removed by an expiry with its own domain and path).
 * Returns the names it removed.
 */
export function deleteCookies(patterns: string[]): string[] {
  if (!patterns.length) return [];
  const names = document.cookie
    .split(";")
    .map((c) => c.split("=")[0].trim())
    .filter((n) => n && patterns.some((p) => matches(n, p)));
  const domains = domainsOf(location.hostname);
  const paths = pathsOf(location.pathname);
  for (const name of names) {
    for (const path of paths) {
      document.cookie = `${name}=; Max-Age=0; Path=${path}`;
      for (const d of domains) document.cookie = `${name}=; Max-Age=0; Path=${path}; Domain=${d}`;
    }
  }
  return names;
}
