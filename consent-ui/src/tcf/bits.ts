const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Appends fixed-width fields, most significant bit first, as the TC string needs. */
export class BitWriter {
  bits: number[] = [];

  int(value: number, width: number): this {
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** width) {
      throw new RangeError(`tcf: ${value} does not fit in ${width} bits`);
    }
    for (let i = width - 1; i >= 0; i--) this.bits.push(Math.floor(value / 2 ** i) % 2);
    return this;
  }

  bool(v: boolean): this {
    this.bits.push(v ? 1 : 0);
    return this;
  }

  /** `width` flags; flag i (1-based) is set when `set` has i. */
  field(set: Set<number>, width: number): this {
    for (let i = 1; i <= width; i++) this.bool(set.has(i));
    return this;
  }

  /** Base64url without padding, after zero-padding to whole bytes (as the spec says). */
  toBase64Url(): string {
    const b = this.bits.slice();
    while (b.length % 8) b.push(0);
    while (b.length % 6) b.push(0);
    let out = "";
    for (let i = 0; i < b.length; i += 6) {
      let v = 0;
      for (let j = 0; j < 6; j++) v = v * 2 + b[i + j];
      out += ALPHABET[v];
    }
    return out;
  }
}

/** Reads fields back from a base64url segment. */
export class BitReader {
  private bits: number[] = [];
  pos = 0;

  constructor(segment: string) {
    for (const c of segment) {
      const v = ALPHABET.indexOf(c);
      if (v < 0) throw new Error(`tcf: invalid character ${JSON.stringify(c)}`);
      for (let j = 5; j >= 0; j--) this.bits.push((v >> j) & 1);
    }
  }

  int(width: number): number {
    if (this.pos + width > this.bits.length) throw new Error("tcf: segment ends too early");
    let v = 0;
    for (let i = 0; i < width; i++) v = v * 2 + this.bits[this.pos++];
    return v;
  }

  bool(): boolean {
    return this.int(1) === 1;
  }

  field(width: number): Set<number> {
    const s = new Set<number>();
    for (let i = 1; i <= width; i++) if (this.bool()) s.add(i);
    return s;
  }
}
