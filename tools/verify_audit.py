#!/usr/bin/env python3
"""Checks an Assent audit export, a consent receipt's inclusion proof or a consistency
proof with the log's public key alone.

Written from docs/audit-format.md, not from the collector's code: a second verifier that
needs nobody's trust but the key's. Standard library plus `cryptography` (PyPI) for
Ed25519.

    tools/verify_audit.py FILE... --public-key KEY      (KEY: the verifier key, or a file)

Prints the verdict as JSON (one line per file, with its name, for several files); exits 0
when every file verifies, 1 when one does not, 2 when the key or a file cannot be read at
all.
"""
import argparse
import base64
import binascii
import csv
import datetime
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
EXPORT_FORMAT = "assent-audit-export/v1"
INCLUSION_FORMAT = "assent-audit-inclusion/v1"
CONSISTENCY_FORMAT = "assent-audit-consistency/v1"
ENTRY_FIELDS = {"seq", "at_ms", "kind", "actor", "data_hash", "prev_hash", "hash", "data"}


class Failure(Exception):
    def __init__(self, seq, code, detail):
        super().__init__(detail)
        self.seq, self.code, self.detail = seq, code, detail


# --- hashes and the Merkle tree (RFC 6962 / RFC 9162) ---------------------------------

def sha256(b):
    return hashlib.sha256(b).digest()


def node(left, right):
    return sha256(b"\x01" + left + right)


def canonical(e):
    def s(v):
        return json.dumps(v, ensure_ascii=False)
    text = ('{"seq":%d,"at_ms":%d,"kind":%s,"actor":%s,"data_hash":%s,"prev_hash":%s}'
            % (e["seq"], e["at_ms"], s(e["kind"]), s(e["actor"]), s(e["data_hash"]),
               s(e["prev_hash"])))
    return text.encode("utf-8")


def leaf_hash(e):
    return sha256(b"\x00" + canonical(e))


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1, size2, proof, root1, root2):
    """RFC 9162 §2.1.4.2."""
    if size1 > size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


def b64(text):
    """Standard base64 with padding, canonical only (the bits after the data are zero),
    as the Rust verifier reads it; raises ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("not base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64")
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


def b64hashes(items):
    """A list of base64 32-byte hashes, or None."""
    if not isinstance(items, list):
        return None
    out = []
    for p in items:
        try:
            h = b64(p)
        except ValueError:
            return None
        if len(h) != 32:
            return None
        out.append(h)
    return out


# --- keys, signed notes, checkpoints (C2SP) -------------------------------------------

class Key:
    def __init__(self, text):
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("not a verifier key")
        name, key_id, typed = parts
        if not name or any(c.isspace() for c in name):
            raise ValueError("bad key name")
        key_id = bytes.fromhex(key_id)
        typed = b64(typed)
        if len(key_id) != 4 or len(typed) != 33 or typed[0] != 1:
            raise ValueError("not an Ed25519 verifier key")
        if sha256(name.encode() + b"\n" + typed)[:4] != key_id:
            raise ValueError("the key id does not match the key")
        self.name, self.id = name, key_id
        self.key = Ed25519PublicKey.from_public_bytes(typed[1:])

    def open(self, note):
        """The text of a note signed by this key; raises ValueError otherwise."""
        if not isinstance(note, str) or not note.endswith("\n"):
            raise ValueError("malformed note")
        if any(ord(c) < 0x20 and c != "\n" for c in note):
            raise ValueError("malformed note")
        split = note.rfind("\n\n")
        if split < 0:
            raise ValueError("malformed note")
        text, sigs = note[:split + 1], note[split + 2:]
        for line in sigs.split("\n")[:-1]:
            if not line.startswith("\u2014 "):
                raise ValueError("malformed signature line")
            name, _, blob = line[2:].partition(" ")
            try:
                blob = b64(blob)
            except ValueError:
                raise ValueError("malformed signature line")
            if len(blob) < 4:
                raise ValueError("malformed signature line")
            if name != self.name or blob[:4] != self.id:
                continue
            try:
                self.key.verify(blob[4:], text.encode("utf-8"))
            except InvalidSignature:
                raise ValueError("the signature does not verify")
            return text
        raise ValueError("no signature by this key")


def parse_checkpoint(text):
    lines = text.split("\n")
    if len(lines) < 4:
        return None
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin or not size.isdigit() or not size.isascii() or (len(size) > 1 and size[0] == "0"):
        return None
    try:
        root = b64(root)
    except ValueError:
        return None
    if len(root) != 32:
        return None
    return origin, int(size), root


def open_checkpoint(key, note):
    try:
        text = key.open(note)
    except ValueError as e:
        raise Failure(0, "checkpoint-signature", str(e))
    cp = parse_checkpoint(text)
    if cp is None:
        raise Failure(0, "checkpoint", "not a checkpoint")
    if cp[0] != key.name:
        raise Failure(0, "checkpoint", "a checkpoint of another log")
    return cp


# --- entries ---------------------------------------------------------------------------

def check_fields(e):
    if e["data"] is not None and hashlib.sha256(e["data"].encode("utf-8")).hexdigest() != e["data_hash"]:
        raise Failure(e["seq"], "data", "data altered")
    if hashlib.sha256(canonical(e)).hexdigest() != e["hash"]:
        raise Failure(e["seq"], "entry", "entry altered")


def entry_of(obj):
    if not isinstance(obj, dict) or set(obj) != ENTRY_FIELDS:
        return None
    ints = ("seq", "at_ms")
    strs = ("kind", "actor", "data_hash", "prev_hash", "hash")
    if any(type(obj[k]) is not int for k in ints) or any(type(obj[k]) is not str for k in strs):
        return None
    if obj["data"] is not None and type(obj["data"]) is not str:
        return None
    return obj


def rfc3339_ms(text):
    if not text.endswith("Z"):
        return None
    try:
        t = datetime.datetime.strptime(text[:-1], "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        return None
    t = t.replace(tzinfo=datetime.timezone.utc)
    delta = t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def unguard(v):
    return v[1:] if v.startswith("'") and v[1:2] in ("=", "+", "-", "@") else v


def parse_line(line, csv_mode):
    """('anchor', obj) | ('entry', entry) | ('skip', None) | None."""
    if not line.strip():
        return ("skip", None)
    if csv_mode:
        rows = list(csv.reader([line]))
        if len(rows) != 1 or len(rows[0]) != 8:
            return None
        f = rows[0]
        if f[0] == "anchor":
            try:
                return ("anchor", json.loads(f[7]))
            except ValueError:
                return None
        if not f[0].isdigit():
            return None
        at = rfc3339_ms(f[1])
        if at is None:
            return None
        return ("entry", {"seq": int(f[0]), "at_ms": at, "kind": unguard(f[2]),
                          "actor": unguard(f[3]), "data_hash": f[4], "prev_hash": f[5],
                          "hash": f[6], "data": unguard(f[7]) if f[7] else None})
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and set(obj) == {"anchor"}:
        return ("anchor", obj["anchor"])
    e = entry_of(obj)
    return ("entry", e) if e else None


# --- checks ------------------------------------------------------------------------------

def statement_text(origin, first, last, size, root):
    return "%s\n%s\n%d %d\n%d\n%s\n" % (EXPORT_FORMAT, origin, first, last, size,
                                         base64.b64encode(root).decode())


ANCHOR_FIELDS = {"format": str, "checkpoint": str, "statement": str, "first": int,
                 "last": int, "firstProof": list, "lastProof": list}


def shaped(obj, fields):
    """Whether obj is an object of exactly these fields and types (lists of strings)."""
    if not isinstance(obj, dict) or set(obj) != set(fields):
        return False
    for name, kind in fields.items():
        v = obj[name]
        if type(v) is not kind:
            return False
        if kind is int and v < 0 and name not in ("first", "last"):
            return False
        if kind is list and any(type(x) is not str for x in v):
            return False
    return True


def check_anchor(key, a):
    if not shaped(a, ANCHOR_FIELDS):
        raise Failure(0, "anchor", "the anchor does not have the fields of one")
    if a["format"] != EXPORT_FORMAT:
        raise Failure(0, "anchor", "not an assent-audit-export/v1 anchor")
    origin, size, root = open_checkpoint(key, a.get("checkpoint"))
    try:
        stated = key.open(a.get("statement"))
    except ValueError as e:
        raise Failure(0, "statement-signature", str(e))
    first, last = a.get("first"), a.get("last")
    if type(first) is not int or type(last) is not int:
        raise Failure(0, "anchor", "first and last must be integers")
    if stated != statement_text(origin, first, last, size, root):
        raise Failure(0, "statement", "the statement does not state this range")
    if not ((first == 0 and last == 0) or 1 <= first <= last <= size):
        raise Failure(0, "anchor", "the range is not within the checkpoint")
    fp, lp = b64hashes(a.get("firstProof")), b64hashes(a.get("lastProof"))
    if fp is None or lp is None:
        raise Failure(0, "anchor", "a proof is not base64 hashes")
    return {"first": first, "last": last, "size": size, "root": root, "fp": fp, "lp": lp}


def verify_export(key, lines):
    rng, nxt, prev, entries, erased = None, 0, None, 0, 0
    csv_mode = False
    try:
        for i, line in enumerate(lines):
            if line.endswith("\r"):
                line = line[:-1]
            if i == 0 and line.startswith("seq,"):
                csv_mode = True
                continue
            parsed = parse_line(line, csv_mode)
            if parsed is None:
                raise Failure(nxt, "malformed", "line %d is not an audit entry" % (i + 1))
            what, obj = parsed
            if what == "skip":
                continue
            if what == "anchor":
                if rng is not None:
                    raise Failure(0, "anchor", "a second anchor")
                rng = check_anchor(key, obj)
                nxt = rng["first"]
                continue
            e = obj
            if rng is None:
                raise Failure(e["seq"], "anchor", "an entry before the anchor")
            first, last = rng["first"], rng["last"]
            if (first == 0 and last == 0) or nxt > last:
                raise Failure(e["seq"], "extra", "an entry beyond the signed range")
            if e["seq"] > nxt:
                raise Failure(e["seq"], "missing", "entries are missing")
            if e["seq"] < nxt:
                raise Failure(e["seq"], "order", "entry out of order or repeated")
            if e["seq"] > first and e["prev_hash"] != prev:
                raise Failure(e["seq"], "chain", "prev_hash does not match")
            if e["seq"] == 1 and e["prev_hash"] != GENESIS:
                raise Failure(e["seq"], "genesis", "the first entry does not start the chain")
            check_fields(e)
            for at, proof in ((first, rng["fp"]), (last, rng["lp"])):
                if e["seq"] == at and not verify_inclusion(e["seq"] - 1, rng["size"], leaf_hash(e), proof, rng["root"]):
                    raise Failure(e["seq"], "inclusion", "not in the checkpoint's tree")
            nxt, prev = e["seq"] + 1, e["hash"]
            entries += 1
            erased += e["data"] is None
        if rng is None:
            raise Failure(0, "anchor", "the export carries no anchor")
        if not (rng["first"] == 0 and rng["last"] == 0) and nxt <= rng["last"]:
            raise Failure(nxt, "truncated", "entries are missing at the end")
        problem = None
    except Failure as f:
        problem = {"seq": f.seq, "code": f.code, "detail": f.detail}
    return verdict("export", entries, erased, rng["size"] if rng else 0, problem)


INCLUSION_FIELDS = {"format": str, "entry": dict, "leafIndex": int, "treeSize": int,
                    "proof": list, "checkpoint": str}
CONSISTENCY_FIELDS = {"format": str, "from": int, "to": int, "fromCheckpoint": str,
                      "toCheckpoint": str, "proof": list}


def verify_inclusion_file(key, p):
    e = entry_of(p.get("entry"))
    size = 0
    if not shaped(p, INCLUSION_FIELDS) or e is None:
        return verdict("inclusion", 1, 0, 0, {"seq": 0, "code": "anchor", "detail": "not a proof of its format"})
    try:
        _, size, root = open_checkpoint(key, p.get("checkpoint"))
        check_fields(e)
        proof = b64hashes(p.get("proof"))
        if proof is None:
            raise Failure(e["seq"], "inclusion", "the proof is not base64 hashes")
        if (p.get("leafIndex") != e["seq"] - 1 or p.get("treeSize") != size
                or e["seq"] < 1
                or not verify_inclusion(e["seq"] - 1, size, leaf_hash(e), proof, root)):
            raise Failure(e["seq"], "inclusion", "not in the checkpoint's tree")
        problem = None
    except Failure as f:
        problem, size = {"seq": f.seq, "code": f.code, "detail": f.detail}, 0
    return verdict("inclusion", 1, int(e is not None and e["data"] is None), size, problem)


def verify_consistency_file(key, p):
    size = 0
    if not shaped(p, CONSISTENCY_FIELDS):
        return verdict("consistency", 0, 0, 0, {"seq": 0, "code": "anchor", "detail": "not a proof of its format"})
    try:
        _, size1, root1 = open_checkpoint(key, p.get("fromCheckpoint"))
        _, size2, root2 = open_checkpoint(key, p.get("toCheckpoint"))
        proof = b64hashes(p.get("proof"))
        if proof is None:
            raise Failure(0, "consistency", "the proof is not base64 hashes")
        if size1 != p.get("from") or size2 != p.get("to") or not verify_consistency(size1, size2, proof, root1, root2):
            raise Failure(0, "consistency", "the newer tree does not extend the older one")
        size, problem = size2, None
    except Failure as f:
        problem = {"seq": f.seq, "code": f.code, "detail": f.detail}
    return verdict("consistency", 0, 0, size, problem)


def verdict(kind, entries, erased, size, problem):
    return {"ok": problem is None, "kind": kind, "entries": entries, "erased": erased,
            "tree_size": size, "problem": problem}


def verify_path(path, key):
    """A proof file is one JSON object whose format is a proof format; anything else is
    checked as an export."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj.get("format") == INCLUSION_FORMAT:
        return verify_inclusion_file(key, obj)
    if isinstance(obj, dict) and obj.get("format") == CONSISTENCY_FORMAT:
        return verify_consistency_file(key, obj)
    # Lines end at "\n" only (a "\r" before it is dropped), as JSON strings may hold
    # other line separators such as U+2028.
    return verify_export(key, text.split("\n"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="+")
    ap.add_argument("--public-key", required=True, help="the verifier key, or a file holding it")
    args = ap.parse_args(argv)
    try:
        try:
            with open(args.public_key, encoding="utf-8") as f:
                key_text = f.read().strip()
        except OSError:
            key_text = args.public_key
        key = Key(key_text)
        results = [(path, verify_path(path, key)) for path in args.file]
    except (ValueError, OSError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    if len(results) == 1:
        print(json.dumps(results[0][1], indent=2))
    else:
        for path, result in results:
            print(json.dumps(dict(file=path, **result)))
    return 0 if all(r["ok"] for _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
