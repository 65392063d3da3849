// What the browser tests share: a real collector binary on a random port (fresh SQLite),
// a separate origin serving the test pages, and Debian's Chromium driven by playwright-core.
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startCollector as start } from "../../../collector/tests/clients/collector.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ui = path.resolve(here, "../..");
export const root = path.resolve(ui, "..");
export const artifacts = path.join(ui, "artifacts");
export const WRITE_KEY = "wk_banner_e2e_write_key_Zq8Mw2Rk5Ny7Ht";
export const ADMIN = "adm_banner_e2e_admin_token_Vs3Lp6Jc9Df";

const listen = (server) =>
  new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));

/** The site: pages registered by the tests, plus a third-party-like tracking script. */
export async function startSite() {
  const pages = new Map();
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/tracker.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(
        "window.__trackerRuns=(window.__trackerRuns||0)+1;" +
          "document.cookie='_ga=GA1.1.123;path=/';document.cookie='_ga_XYZ=GS1.1;path=/';" +
          "document.cookie='_ga_XYZ=GS1.2;path=/shop/';",
      );
    }
    const html = pages.get(url.pathname);
    if (!html) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  const port = await listen(server);
  return { origin: `http://127.0.0.1:${port}`, pages, close: () => new Promise((r) => server.close(r)) };
}

/** Names the browser resolves to 127.0.0.1, so cookies can be set on parent domains. */
export const TEST_DOMAIN = "assent.test";

/**
 * The collector binary on a fresh SQLite file, allowing `origin` (comma-separated) for
 * CORS, with `env` added to its environment.
 */
export async function startCollector(origin, env = {}) {
  const { url, child } = await start({
    writeKey: WRITE_KEY,
    admin: ADMIN,
    env: { ASSENT_BOOTSTRAP_ALLOWED_ORIGINS: origin, ASSENT_SDK_DIR: path.join(ui, "dist"), ...env },
  });
  const admin = async (p, text = false) => {
    const r = await fetch(`${url}${p}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    if (!r.ok) throw new Error(`${p}: ${r.status}`);
    return text ? r.text() : r.json();
  };
  return {
    url,
    /** The audit trail as exported for compliance staff (JSONL). */
    auditExport: () => admin("/v1/audit/export?format=jsonl", true),
    /** Everything the collector's database holds about a subject (GDPR access). */
    subject: (id) => admin(`/v1/subjects/${encodeURIComponent(id)}`),
    stop: () => child.kill("SIGTERM"),
  };
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      `--host-resolver-rules=MAP *.${TEST_DOMAIN} 127.0.0.1`,
    ],
  });
}

/** A page embedding the banner the way a site does: one tag, optional inline config. */
export function sitePage(collector, { policy = "2026-11", lang = "en", config, body = "" } = {}) {
  return `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><title>Shop</title>
${config ? `<script type="application/json" id="assent-config">${JSON.stringify(config)}</script>` : ""}
<script src="${collector.url}/sdk/assent.js" data-write-key="${WRITE_KEY}" data-policy-version="${policy}" async></script>
<script type="text/plain" data-assent-purpose="analytics" src="/tracker.js"></script>
<script type="text/plain" data-assent-purpose="analytics">window.__inlineRuns=(window.__inlineRuns||0)+1</script>
</head><body><main><h1>Shop</h1><p>Products.</p>${body}</main></body></html>`;
}

/** Waits until the page's Assent has started. */
export async function ready(page) {
  await page.waitForFunction(() => window.assent && !Array.isArray(window.assent) && window.__assentReady);
}

/** Records that `assent:ready` fired, counts dialogs opened, before any page script runs. */
export const INIT = () => {
  addEventListener("assent:ready", () => (window.__assentReady = true));
  const show = HTMLDialogElement.prototype.showModal;
  window.__dialogs = 0;
  HTMLDialogElement.prototype.showModal = function () {
    window.__dialogs++;
    return show.call(this);
  };
};

export const stored = (page) => page.evaluate(() => JSON.parse(localStorage.getItem("assent") || "null"));

/** The banner's shadow root, for locators: `#assent-banner >> css=…` pierces it. */
export const inBanner = (page, sel) => page.locator(`#assent-banner ${sel}`);

export async function until(f, what, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the collector holds at least `n` consent records for the subject `id`. */
export const consentOf = (collector, id, n = 1) =>
  until(async () => {
    const c = (await collector.subject(id)).consent;
    return c.length >= n && c;
  }, `${n} consent record(s) in the collector`);

export function shot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  return page.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

export const axeSource = () => readFileSync(path.join(ui, "node_modules/axe-core/axe.min.js"), "utf8");
