"""The Python baseline for duplicate detection: recordlinkage (PyPI) on the same Febrl
records, with the same blocking passes, the same comparisons (Jaro-Winkler, Levenshtein,
exact; missing values left out of a pair's weighted mean) and the same threshold as
assent_segmentation::dedup::febrl::matcher.

Usage: febrl_recordlinkage.py FILE THRESHOLD
Prints one JSON line: {"records", "true_pairs", "candidates", "proposed", "precision",
"recall", "seconds"} (seconds: indexing, comparing and classifying, not reading).
"""
import json
import sys
import time

import numpy as np
import pandas as pd
import recordlinkage

path, threshold = sys.argv[1], float(sys.argv[2])
frame = pd.read_csv(path, sep=",", skipinitialspace=True, dtype=str, keep_default_na=False)
frame.columns = [c.strip() for c in frame.columns]
ids = frame.pop("rec_id").str.strip()
frame = frame.apply(lambda c: c.str.strip().str.lower().str.split().str.join(" "))
frame = frame.replace("", np.nan)
number = ids.str.split("-").str[1]
truth = set()
for _, group in pd.Series(range(len(ids))).groupby(number.values):
    members = sorted(group.tolist())
    truth.update((a, b) for i, a in enumerate(members) for b in members[i + 1:])

fields = [("given_name", "jarowinkler", 1.0), ("surname", "jarowinkler", 1.0),
          ("street_number", "exact", 0.5), ("address_1", "levenshtein", 1.0),
          ("address_2", "jarowinkler", 0.5), ("suburb", "jarowinkler", 1.0),
          ("postcode", "exact", 1.0), ("state", "exact", 0.5),
          ("date_of_birth", "levenshtein", 1.0), ("soc_sec_id", "levenshtein", 1.0)]
frame.index = range(len(frame))
keyed = frame.copy()
for name, prefix in [("given_name", 3), ("surname", 3)]:
    keyed[f"{name}_block"] = keyed[name].str[:prefix]

start = time.perf_counter()
candidates = None
for key in ["given_name_block", "surname_block", "postcode", "date_of_birth", "soc_sec_id"]:
    # Blocks larger than 500 are skipped, as ours are.
    sizes = keyed[key].map(keyed[key].value_counts())
    kept = keyed[(sizes <= 500) & keyed[key].notna()]
    pairs = recordlinkage.Index()
    pairs.block(key)
    links = pairs.index(kept)
    candidates = links if candidates is None else candidates.union(links)
compare = recordlinkage.Compare(n_jobs=1)
for name, method, _ in fields:
    if method == "exact":
        compare.exact(name, name, missing_value=np.nan, label=name)
    else:
        compare.string(name, name, method=method, missing_value=np.nan, label=name)
features = compare.compute(candidates, frame)
weights = pd.Series({name: w for name, _, w in fields})
present = features.notna().astype(float) * weights
score = (features.fillna(0) * weights).sum(axis=1) / present.sum(axis=1)
proposed = score[score >= threshold].index
seconds = time.perf_counter() - start

found = {(min(a, b), max(a, b)) for a, b in proposed}
hits = len(found & truth)
print(json.dumps({"records": len(frame), "true_pairs": len(truth), "candidates": len(candidates),
                  "proposed": len(found), "precision": hits / max(len(found), 1),
                  "recall": hits / len(truth), "seconds": seconds}))
