"""Writes assignment.json: test vectors of experiment assignment v1, computed here from
the documented definition (not from the Rust or web code), which both check.

    bucket(seed, subject) = fmix32(fnv1a32(utf8(seed + ":" + subject))) / 2**32
    rollout(seed, subject) = the same over seed + ":rollout:" + subject

A split with weights w and coverage c gives variant i the range
[sum(w[:i]), sum(w[:i]) + c * w[i]); a bucket outside every range is not in the test.

The collector assigns the subject's pseudonym, not the id a client sends:

    pseudonym(key id, key, id) = key id + "." + hex(HMAC-SHA256(key, "assent/pseudonym/v1\0" + utf8(id)))[:32]

"served" holds, for a published test key, the ids a browser or an SDK sends, their
pseudonyms, and the variant the collector must serve each one.
"""
import hashlib
import hmac
import json
import pathlib

M = 0xFFFFFFFF


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & M
    return h


def fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M
    return h ^ (h >> 16)


def hash_parts(*parts: str) -> int:
    return fmix32(fnv1a32(":".join(parts).encode("utf-8")))


def variant(weights, coverage, bucket):
    start = 0.0
    for i, w in enumerate(weights):
        if start <= bucket < start + coverage * w:
            return i
        start += w
    return None


def pseudonym(key_id: str, key: str, raw: str) -> str:
    mac = hmac.new(key.encode("utf-8"), b"assent/pseudonym/v1\0" + raw.encode("utf-8"), hashlib.sha256)
    return key_id + "." + mac.hexdigest()[:32]


def served():
    """Eight ids in the web script's form (32 hex digits): each variant and a visitor
    outside the coverage among them."""
    key_id, key, seed = "tv1", "assent-test-vectors-pseudonym-key-2026", "served-2026"
    weights, coverage = [0.2, 0.3, 0.5], 0.8
    cases = []
    for i in range(8):
        raw = hashlib.sha256(f"served-{i}".encode()).hexdigest()[:32]
        p = pseudonym(key_id, key, raw)
        b = hash_parts(seed, p) / 2**32
        cases.append({"subject": raw, "pseudonym": p, "bucket": b,
                      "variant": variant(weights, coverage, b)})
    assert {c["variant"] for c in cases} == {0, 1, 2, None}
    return {"key_id": key_id, "key": key, "seed": seed, "weights": weights,
            "coverage": coverage, "cases": cases}


def main():
    seeds = ["checkout-2026", "homepage-hero", "", "layer:pricing"]
    subjects = ["user-1", "user-2", "user-10", "", "Ünïcødé ✓", "6f1ed002ab5595859014ebf0951522d9",
                "a" * 100]
    vectors = []
    for seed in seeds:
        for subject in subjects:
            h = hash_parts(seed, subject)
            vectors.append({"seed": seed, "subject": subject, "hash": h, "bucket": h / 2**32,
                            "rollout_hash": hash_parts(seed, "rollout", subject)})
    splits = []
    for weights, coverage in [([0.5, 0.5], 1.0), ([0.1, 0.2, 0.7], 1.0), ([0.5, 0.5], 0.4),
                              ([0.25, 0.25, 0.25, 0.25], 0.9)]:
        cases = []
        for v in vectors[:14]:
            cases.append({"seed": v["seed"], "subject": v["subject"],
                          "variant": variant(weights, coverage, v["bucket"])})
        splits.append({"weights": weights, "coverage": coverage, "cases": cases})
    out = pathlib.Path(__file__).with_name("assignment.json")
    out.write_text(json.dumps({"version": 1, "vectors": vectors, "splits": splits, "served": served()},
                              indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
