/**
 * On-demand modules (other languages, TCF): separate files served beside `assent.js`,
 * loaded with a script tag from the same origin, which register themselves here. The
 * registry is a global so the classic and the ES module builds share it.
 */
declare const __ASSENT_CHUNKS__: Record<string, string>;

type Registry = { mods: Record<string, unknown>; waiting: Record<string, ((m: unknown) => void)[]> };

function registry(): Registry {
  const w = window as unknown as { __assentModules?: Registry };
  return (w.__assentModules ||= { mods: {}, waiting: {} });
}

export function register(name: string, mod: unknown): void {
  const r = registry();
  r.mods[name] = mod;
  (r.waiting[name] || []).forEach((f) => f(mod));
  delete r.waiting[name];
}

/** Loads `name` (once) from `base`; resolves with what it registered. */
export function load<T>(base: string, name: string): Promise<T> {
  const r = registry();
  if (name in r.mods) return Promise.resolve(r.mods[name] as T);
  return new Promise<T>((resolve, reject) => {
    const first = !r.waiting[name];
    (r.waiting[name] ||= []).push(resolve as (m: unknown) => void);
    if (!first) return;
    const file = typeof __ASSENT_CHUNKS__ !== "undefined" ? __ASSENT_CHUNKS__[name] : undefined;
    if (!file) return reject(new Error(`assent: no module ${name}`));
    const s = document.createElement("script");
    s.src = base + file;
    s.async = true;
    s.onerror = () => {
      delete r.waiting[name];
      reject(new Error(`assent: cannot load ${file}`));
    };
    document.head.appendChild(s);
  });
}
