/**
 * The part of the CMP API that must exist before anything else: the `__tcfapiLocator`
 * frame that vendors in iframes look for, a `__tcfapi` stub that answers `ping` and queues
 * the rest until the TCF module takes over, and the postMessage bridge for framed callers.
 */
export function installTcfStub(gdprApplies: boolean): void {
  const w = window as unknown as {
    __tcfapi?: ((...a: unknown[]) => void) & { queue?: unknown[] };
    frames: Record<string, unknown>;
  };
  const frame = () => {
    if (w.frames["__tcfapiLocator"]) return;
    if (!document.body) return void setTimeout(frame, 5);
    const f = document.createElement("iframe");
    f.name = "__tcfapiLocator";
    f.title = "TCF API locator";
    f.style.display = "none";
    document.body.appendChild(f);
  };
  frame();
  if (!w.__tcfapi) {
    const queue: unknown[] = [];
    const stub = (command: unknown, version: unknown, cb: unknown, parameter?: unknown) => {
      if (command === "ping" && typeof cb === "function") {
        cb({ gdprApplies, cmpLoaded: false, cmpStatus: "stub", displayStatus: "hidden", apiVersion: "2.2" }, true);
      } else queue.push([command, version, cb, parameter]);
    };
    stub.queue = queue;
    w.__tcfapi = stub;
  }
  addEventListener("message", (e: MessageEvent) => {
    let d = e.data;
    const text = typeof d === "string";
    if (text) {
      try {
        d = JSON.parse(d);
      } catch {
        return;
      }
    }
    const c = d && d.__tcfapiCall;
    if (!c || !e.source) return;
    w.__tcfapi!(
      c.command,
      c.version,
      (returnValue: unknown, success: boolean) => {
        const msg = { __tcfapiReturn: { returnValue, success, callId: c.callId } };
        (e.source as Window).postMessage(text ? JSON.stringify(msg) : msg, "*");
      },
      c.parameter,
    );
  });
}
