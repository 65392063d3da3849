const hex = (b: ArrayBuffer | Uint8Array): string =>
  Array.from(b instanceof Uint8Array ? b : new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");

const utf8 = (s: string) => new TextEncoder().encode(s);

/** A UUIDv7 (time-ordered, like the SDK's message and consent ids). */
export function uuidv7(nowMs: number): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  let t = nowMs;
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A random pseudonymous id, 128 bits as 32 hex digits. */
export const randomId = (): string => hex(crypto.getRandomValues(new Uint8Array(16)));

/**
 * SHA-256 as hex, or undefined where WebCrypto is absent: browsers only offer it in secure
 * contexts (https, localhost), so a site served over plain http gets records without a
 * `noticeHash` rather than no records.
 */
export async function sha256Hex(text: string): Promise<string | undefined> {
  if (!crypto.subtle) {
    console.warn("assent: this page is not served over https, so no noticeHash is recorded");
    return undefined;
  }
  return hex(await crypto.subtle.digest("SHA-256", utf8(text)));
}

/**
 * The user-id normalization of protocol/test-vectors/user-id-hmac.json: surrounding Unicode
 * White_Space removed (not U+FEFF, which JavaScript's trim() would also strip), NFC, then
 * only A-Z lower-cased.
 */
export function normalizeUserId(id: string): string {
  return id
    .replace(/^\p{White_Space}+|\p{White_Space}+$/gu, "")
    .normalize("NFC")
    .replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** HMAC-SHA256(pepper, normalized user id), lowercase hex: what `identify` sends. */
export async function pepperUserId(pepper: string, id: string): Promise<string> {
  const normalized = normalizeUserId(id);
  if (!normalized) throw new Error("assent: empty user id");
  if (!crypto.subtle) throw new Error("assent: peppering the user id needs https (WebCrypto)");
  const key = await crypto.subtle.importKey("raw", utf8(pepper), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return hex(await crypto.subtle.sign("HMAC", key, utf8(normalized)));
}

/** JSON with object keys sorted at every level: the input of `noticeHash`. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

export const iso = (ms: number): string => new Date(ms).toISOString();
