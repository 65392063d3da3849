/**
 * The ES module build (`assent.esm.js`): `createAssent(config)` for sites that bundle
 * their own code. Same banner and tracker as `assent.js`.
 */
import { Assent } from "./assent";
import { parseConfig } from "./config";
import type { Config } from "./types";

export type { Config, Purposes, ConsentRecord } from "./types";
export { Assent };

/** Creates the banner and tracker and starts them (Consent Mode defaults are set at once). */
export async function createAssent(
  config: Partial<Config> & { writeKey: string; policyVersion: string; endpoint: string },
): Promise<Assent> {
  const base = config.base || new URL(".", import.meta.url).href;
  const a = new Assent(parseConfig({ ...config, base }));
  await a.start();
  return a;
}
