import type { TcfConfig } from "../types";
import { decode, TCF_POLICY_VERSION } from "./tcstring";

type Callback = (data: unknown, success: boolean) => void;
type Call = [string, number, Callback, unknown?];

const asMap = (s: Set<number>, ids?: Iterable<number>) => {
  const o: Record<number, boolean> = {};
  if (ids) for (const id of ids) o[id] = s.has(id);
  else s.forEach((id) => (o[id] = true));
  return o;
};

/**
 * The standard `__tcfapi` (CMP API v2.2): ping, addEventListener, removeEventListener and
 * getTCData, answering from the current TC string. Calls queued by the stub are replayed.
 */
export class CmpApi {
  private tc = "";
  private status: "tcloaded" | "cmpuishown" | "useractioncomplete" = "tcloaded";
  private listeners = new Map<number, Callback>();
  private nextId = 1;
  private shown = false;

  constructor(private cfg: TcfConfig & { gdprApplies?: boolean }) {
    const w = window as unknown as { __tcfapi?: ((...a: unknown[]) => unknown) & { queue?: Call[] } };
    const queued = w.__tcfapi?.queue || [];
    w.__tcfapi = (command: unknown, version: unknown, callback: unknown, parameter?: unknown) =>
      this.call(String(command), Number(version), callback as Callback, parameter);
    queued.forEach(([c, v, cb, p]) => this.call(c, v, cb, p));
  }

  /** A new TC string; `status` says why (the UI was shown, or the person chose). */
  update(tc: string, status: "tcloaded" | "cmpuishown" | "useractioncomplete", shown: boolean): void {
    this.tc = tc;
    this.status = status;
    this.shown = shown;
    this.listeners.forEach((cb, id) => cb(this.tcData(id), true));
  }

  private tcData(listenerId?: number, vendorIds?: number[]) {
    const m = this.tc ? decode(this.tc) : undefined;
    const empty = new Set<number>();
    return {
      tcString: this.tc,
      tcfPolicyVersion: TCF_POLICY_VERSION,
      cmpId: this.cfg.cmpId,
      cmpVersion: this.cfg.cmpVersion,
      gdprApplies: this.cfg.gdprApplies !== false,
      eventStatus: this.status,
      cmpStatus: "loaded",
      listenerId,
      isServiceSpecific: true,
      useNonStandardTexts: false,
      publisherCC: this.cfg.publisherCC || "AA",
      purposeOneTreatment: false,
      purpose: {
        consents: asMap(m?.purposeConsents || empty),
        legitimateInterests: asMap(m?.purposeLegitimateInterests || empty),
      },
      vendor: {
        consents: asMap(m?.vendorConsents || empty, vendorIds),
        legitimateInterests: asMap(m?.vendorLegitimateInterests || empty, vendorIds),
        disclosedVendors: asMap(m?.disclosedVendors || empty, vendorIds),
      },
      specialFeatureOptins: asMap(m?.specialFeatureOptins || empty),
      publisher: {
        consents: asMap(m?.publisher?.consents || empty),
        legitimateInterests: asMap(m?.publisher?.legitimateInterests || empty),
        customPurpose: { consents: {}, legitimateInterests: {} },
        restrictions: {},
      },
    };
  }

  private call(command: string, _version: number, cb: Callback, parameter?: unknown): void {
    if (typeof cb !== "function") return;
    switch (command) {
      case "ping":
        cb(
          {
            gdprApplies: this.cfg.gdprApplies !== false,
            cmpLoaded: true,
            cmpStatus: "loaded",
            displayStatus: this.shown ? "visible" : "hidden",
            apiVersion: "2.2",
            cmpVersion: this.cfg.cmpVersion,
            cmpId: this.cfg.cmpId,
            gvlVersion: this.cfg.vendorListVersion,
            tcfPolicyVersion: TCF_POLICY_VERSION,
          },
          true,
        );
        break;
      case "addEventListener": {
        const id = this.nextId++;
        this.listeners.set(id, cb);
        cb(this.tcData(id), true);
        break;
      }
      case "removeEventListener":
        cb(this.listeners.delete(Number(parameter)), true);
        break;
      case "getTCData":
        cb(this.tcData(undefined, Array.isArray(parameter) ? parameter : undefined), true);
        break;
      default:
        cb(null, false);
    }
  }
}
