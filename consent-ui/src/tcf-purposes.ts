import type { Optional, Purposes } from "./types";

/**
 * TCF purposes (1-11) by the Assent purpose that covers them. Purpose 1 (store or access
 * information on a device) goes with any optional purpose. Used by the banner (to list
 * TCF vendors under our purposes) and by the TCF module (to build the TC string).
 */
export const TCF_PURPOSES: Record<Optional, number[]> = {
  advertising: [2, 3, 4, 7, 9],
  personalization: [5, 6, 11],
  analytics: [8, 10],
};

/** The TCF purposes the visitor's choice grants. */
export function grantedTcfPurposes(p: Purposes): Set<number> {
  const s = new Set<number>();
  for (const k of Object.keys(TCF_PURPOSES) as Optional[]) if (p[k]) TCF_PURPOSES[k].forEach((n) => s.add(n));
  if (p.analytics || p.personalization || p.advertising) s.add(1);
  return s;
}
