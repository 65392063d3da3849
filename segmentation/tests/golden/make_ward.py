"""Writes ward.json: small inputs and SciPy's Ward linkage of them (merge heights and
sizes) with scikit-learn's AgglomerativeClustering labels, the oracle for
tests/ward_golden.rs. Run from this folder with SciPy and scikit-learn installed:

    ../../../target/venv/bin/python make_ward.py
"""
import json

import numpy as np
import scipy
import sklearn
from scipy.cluster.hierarchy import linkage
from sklearn.cluster import AgglomerativeClustering

rng = np.random.default_rng(20261203)
cases = []
for name, n, dim, k, spread in [("blobs-2d", 200, 2, 3, 1.0), ("overlapping-5d", 300, 5, 4, 3.0),
                                ("uniform-8d", 250, 8, 6, None)]:
    if spread is None:
        points = rng.random((n, dim))
    else:
        centres = rng.normal(0, 4, (k, dim))
        points = np.concatenate([rng.normal(c, spread, (n // k, dim)) for c in centres])
    z = linkage(points, "ward")
    labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(points).labels_
    cases.append({
        "name": name, "dim": dim, "k": k, "points": points.ravel().tolist(),
        "heights": z[:, 2].tolist(), "sizes": z[:, 3].astype(int).tolist(),
        "labels": labels.tolist(),
    })
json.dump({"scipy": scipy.__version__, "scikit_learn": sklearn.__version__, "cases": cases},
          open("ward.json", "w"))
print(f"ward.json: {len(cases)} cases, SciPy {scipy.__version__}, scikit-learn {sklearn.__version__}")
