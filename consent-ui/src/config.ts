import type { Config, Optional } from "./types";
import { OPTIONAL } from "./types";

export const DEFAULTS: Omit<Config, "writeKey" | "policyVersion" | "endpoint" | "base"> = {
  purposes: [...OPTIONAL],
  vendors: [],
  cookies: {},
  texts: {},
  theme: { accent: "#1d4ed8", background: "#ffffff", text: "#1a1a1a" },
  consentModeDefaults: [],
  waitForUpdate: 500,
  gtmEvents: {},
  flushAt: 20,
  flushIntervalMs: 5000,
  settingsButton: true,
};

/** A configuration error: what is wrong, never a value. */
export class ConfigError extends Error {}

/**
 * Builds the configuration from the script tag's `data-*` attributes and the optional
 * inline JSON (`<script type="application/json" id="assent-config">`), checking what the
 * banner relies on.
 */
export function parseConfig(input: Partial<Config> & Record<string, unknown>): Config {
  const cfg = { ...DEFAULTS, ...input, theme: { ...DEFAULTS.theme, ...(input.theme || {}) } } as Config;
  if (!cfg.writeKey || typeof cfg.writeKey !== "string") throw new ConfigError("assent: data-write-key is missing");
  if (!cfg.policyVersion || typeof cfg.policyVersion !== "string") {
    throw new ConfigError("assent: data-policy-version is missing");
  }
  if (!Array.isArray(cfg.purposes) || !cfg.purposes.every((p) => OPTIONAL.includes(p as Optional))) {
    throw new ConfigError(`assent: purposes must be chosen from ${OPTIONAL.join(", ")}`);
  }
  for (const v of cfg.vendors) {
    if (!v || typeof v.name !== "string" || !Array.isArray(v.purposes)) {
      throw new ConfigError("assent: each vendor needs a name and its purposes");
    }
  }
  if (cfg.userIdPepper !== undefined && new TextEncoder().encode(cfg.userIdPepper).length < 16) {
    throw new ConfigError("assent: userIdPepper must be at least 16 bytes");
  }
  const t = cfg.tcf;
  if (t) {
    const ok = (n: unknown, bits: number) => Number.isInteger(n) && (n as number) >= 0 && (n as number) < 2 ** bits;
    if (!ok(t.cmpId, 12) || !ok(t.cmpVersion, 12) || !ok(t.vendorListVersion, 12) || !Array.isArray(t.vendors)) {
      throw new ConfigError("assent: tcf needs cmpId, cmpVersion, vendorListVersion (12-bit numbers) and vendors");
    }
    if (!t.vendors.every((v) => ok(v.id, 16) && v.id > 0 && Array.isArray(v.purposes))) {
      throw new ConfigError("assent: each TCF vendor needs an id (1-65535) and purposes");
    }
  }
  cfg.endpoint = cfg.endpoint.replace(/\/+$/, "");
  return cfg;
}

/** Reads `data-*` attributes and inline JSON around the script element. */
export function configFromScript(script: HTMLScriptElement): Config {
  const src = new URL(script.src, location.href);
  const inlineId = script.dataset.config || "assent-config";
  const inline = document.getElementById(inlineId);
  let json: Record<string, unknown> = {};
  if (inline?.textContent?.trim()) {
    try {
      json = JSON.parse(inline.textContent);
    } catch {
      throw new ConfigError(`assent: #${inlineId} is not valid JSON`);
    }
  }
  return parseConfig({
    endpoint: src.origin,
    base: src.href.slice(0, src.href.lastIndexOf("/") + 1),
    ...json,
    ...(script.dataset.writeKey ? { writeKey: script.dataset.writeKey } : {}),
    ...(script.dataset.policyVersion ? { policyVersion: script.dataset.policyVersion } : {}),
    ...(script.dataset.endpoint ? { endpoint: script.dataset.endpoint } : {}),
    ...(script.dataset.lang ? { lang: script.dataset.lang } : {}),
  } as Partial<Config> & Record<string, unknown>);
}
