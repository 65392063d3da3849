import { css } from "./styles";
import { TCF_PURPOSES } from "./tcf-purposes";
import type { Config, Layer, Method, Optional, Purposes, Texts } from "./types";
import { OPTIONAL } from "./types";

export interface Choice {
  purposes: Purposes;
  method: Method;
  interaction: { layer: Layer; control: string };
}

const el = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
};

const all = (on: boolean): Purposes => ({
  necessary: true,
  analytics: on,
  personalization: on,
  advertising: on,
});

/**
 * The banner: a modal dialog with two layers. The first offers Accept all, Reject all and
 * Customize as three identical buttons; the second lists the purposes (none pre-ticked on a
 * first visit) with their vendors. Focus moves into the dialog and stays there until a
 * choice is made; Escape on the second layer goes back to the first.
 */
export class Banner {
  private host: HTMLElement;
  private root: ShadowRoot;
  private dialog?: HTMLDialogElement;
  private settings?: HTMLButtonElement;

  constructor(
    private cfg: Config,
    private texts: Texts,
    private lang: string,
    private gpc: boolean,
    private onChoice: (c: Choice) => void,
  ) {
    this.host = el("div", { id: "assent-banner" });
    this.root = this.host.attachShadow({ mode: "open" });
    this.root.append(el("style", {}, css(cfg.theme)));
    document.body.append(this.host);
  }

  /** Whether the purposes can be chosen freely (GPC locks advertising off). */
  private locked(p: Optional): boolean {
    return this.gpc && p === "advertising";
  }

  private decide(purposes: Purposes, method: Method, layer: Layer, control: string): void {
    if (this.gpc) purposes.advertising = false;
    this.close();
    this.onChoice({ purposes, method, interaction: { layer, control } });
  }

  private buttons(layer: Layer, extra?: HTMLButtonElement): HTMLDivElement {
    const t = this.texts;
    const b = (id: string, text: string, f: () => void) => {
      const x = el("button", { type: "button", class: "btn", id }, text);
      x.onclick = f;
      return x;
    };
    return el(
      "div",
      { class: "row" },
      b("accept", t.acceptAll, () => this.decide(all(true), "accept_all", layer, "accept_all")),
      b("reject", t.rejectAll, () => this.decide(all(false), "reject_all", layer, "reject_all")),
      extra || b("customize", t.customize, () => this.show(2)),
    );
  }

  /** Opens layer 1 (first visit) or 2 (preferences), with `current` ticked on layer 2. */
  show(layer: 1 | 2, current?: Purposes | null): void {
    this.close();
    const t = this.texts;
    const d = el("dialog", { "aria-labelledby": "t", "aria-describedby": "b", lang: this.lang, tabindex: "-1" });
    if (layer === 1) {
      d.append(el("h2", { id: "t" }, t.title), el("p", { id: "b" }, t.body));
      if (this.gpc) d.append(el("p", { class: "note" }, t.gpcNote));
      if (this.cfg.tcf) d.append(el("p", {}, t.tcfNote));
      d.append(this.buttons("first"));
    } else {
      const list = el("ul");
      const boxes: Partial<Record<Optional, HTMLInputElement>> = {};
      for (const p of ["necessary", ...this.cfg.purposes] as const) {
        const id = `p-${p}`;
        const box = el("input", { type: "checkbox", id, "aria-describedby": `${id}-d` });
        if (p === "necessary") {
          box.checked = box.disabled = true;
        } else {
          box.checked = !!current?.[p] && !this.locked(p);
          box.disabled = this.locked(p);
          boxes[p] = box;
        }
        const state = p === "necessary" ? ` (${t.alwaysOn})` : "";
        const item = el(
          "li",
          {},
          el("label", { for: id }, box, t.purpose[p].name + state),
          el("p", { class: "d", id: `${id}-d` }, t.purpose[p].description),
        );
        const vendors: { name: string; url?: string }[] =
          p === "necessary"
            ? []
            : [
                ...this.cfg.vendors.filter((v) => v.purposes.includes(p)),
                ...(this.cfg.tcf?.vendors || []).filter((v) => v.purposes.some((n) => TCF_PURPOSES[p].includes(n))),
              ];
        if (vendors.length) {
          const names: (Node | string)[] = [`${t.vendors}: `];
          vendors.forEach((v, i) => {
            if (i) names.push(", ");
            names.push(v.url ? el("a", { href: v.url, target: "_blank", rel: "noopener" }, v.name) : v.name);
          });
          item.append(el("p", { class: "v" }, ...names));
        }
        if (p === "advertising" && this.gpc) item.append(el("p", { class: "d note" }, t.gpcNote));
        list.append(item);
      }
      const save = el("button", { type: "button", class: "btn", id: "save" }, t.save);
      save.onclick = () => {
        const p = all(false);
        OPTIONAL.forEach((k) => (p[k] = !!boxes[k]?.checked));
        const any = OPTIONAL.some((k) => p[k]);
        const had = current && OPTIONAL.some((k) => current[k]);
        this.decide(p, had && !any ? "withdraw" : "custom", "second", "save");
      };
      d.append(el("h2", { id: "t" }, t.prefsTitle), el("p", { id: "b" }, t.prefsBody), list, this.buttons("second", save));
      d.addEventListener("cancel", (e) => {
        e.preventDefault();
        if (current) this.close();
        else this.show(1);
      });
    }
    if (layer === 1) d.addEventListener("cancel", (e) => e.preventDefault());
    d.addEventListener("keydown", (e) => this.trap(e, d));
    this.root.append(d);
    this.dialog = d;
    if (this.settings) this.settings.hidden = true;
    d.showModal();
    // Layer 1: the dialog itself takes focus, so no button is pre-selected; layer 2: the
    // first choice.
    (layer === 1 ? d : d.querySelector<HTMLElement>("input:not([disabled])") || d).focus();
  }

  /** Tab and Shift+Tab wrap around inside the dialog. */
  private trap(e: KeyboardEvent, d: HTMLDialogElement): void {
    if (e.key !== "Tab") return;
    const f = Array.from(d.querySelectorAll<HTMLElement>("button,input:not([disabled]),a[href]"));
    const first = f[0];
    const last = f[f.length - 1];
    const active = this.root.activeElement;
    const inside = f.includes(active as HTMLElement);
    if (e.shiftKey && (active === first || !inside)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (active === last || !inside)) {
      e.preventDefault();
      first.focus();
    }
  }

  close(): void {
    this.dialog?.close();
    this.dialog?.remove();
    this.dialog = undefined;
    if (this.settings) this.settings.hidden = false;
  }

  get open(): boolean {
    return !!this.dialog;
  }

  /** The small, always-available control that reopens the preferences. */
  settingsButton(current: () => Purposes | null): void {
    if (this.settings || !this.cfg.settingsButton) return;
    const b = el("button", { type: "button", id: "s" }, this.texts.settings);
    b.onclick = () => this.show(2, current());
    this.root.append(b);
    this.settings = b;
    b.hidden = this.open;
  }
}
