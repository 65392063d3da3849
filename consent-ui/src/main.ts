/**
 * `assent.js`: the one script a site embeds.
 *
 *   <script src="https://collector.example/sdk/assent.js" data-write-key="…"
 *           data-policy-version="2026-11" async></script>
 *
 * Calls made before it loads (`window.assent = window.assent || []; assent.push(["track", …])`)
 * are replayed once it has started.
 */
import { Assent } from "./assent";
import { configFromScript } from "./config";

type Call = [string, ...unknown[]];

function api(a: Assent) {
  const surface: Record<string, unknown> = {
    version: __ASSENT_VERSION__,
    track: a.track.bind(a),
    page: a.page.bind(a),
    content: a.content.bind(a),
    flag: a.flag.bind(a),
    recommendationViewed: a.recommendationViewed.bind(a),
    recommendationClicked: a.recommendationClicked.bind(a),
    identify: a.identify.bind(a),
    reset: a.reset.bind(a),
    flush: a.flush.bind(a),
    showPreferences: a.showPreferences.bind(a),
    getConsent: a.consent.bind(a),
    onConsent: a.on.bind(a),
  };
  surface.push = ([name, ...args]: Call) => {
    const f = surface[name];
    if (typeof f === "function") return f(...args);
    console.error(`assent: no method ${name}`);
  };
  return surface as Record<string, (...x: unknown[]) => unknown>;
}

declare const __ASSENT_VERSION__: string;

const script = document.currentScript as HTMLScriptElement | null;
(function boot() {
  const w = window as unknown as { assent?: unknown };
  if (w.assent && !Array.isArray(w.assent)) return; // loaded twice: the first one stays
  if (!script) return console.error("assent: load assent.js with a plain <script src> tag");
  let a: Assent;
  try {
    a = new Assent(configFromScript(script));
  } catch (e) {
    return console.error((e as Error).message);
  }
  const queued = Array.isArray(w.assent) ? (w.assent as Call[]) : [];
  const surface = api(a);
  w.assent = surface;
  const go = () =>
    a.start().then(() => {
      queued.forEach((c) => surface.push(c));
      dispatchEvent(new CustomEvent("assent:ready"));
    });
  if (document.body) void go();
  else addEventListener("DOMContentLoaded", () => void go());
})();
