"""scikit-learn's KMeans on the points the Rust bench wrote, for the same-run comparison.

Usage: kmeans_sklearn.py DIR   (DIR holds points.f64, init.f64 and meta.json)
Prints one JSON line per fit: {"fit", "seconds", "n_iter", "inertia"}.
"""
import json
import sys
import time

import numpy as np
from sklearn.cluster import KMeans

folder = sys.argv[1]
meta = json.load(open(f"{folder}/meta.json"))
n, dim, k, seed = meta["n"], meta["dim"], meta["k"], meta["seed"]
points = np.fromfile(f"{folder}/points.f64", dtype="<f8").reshape(n, dim)
init = np.fromfile(f"{folder}/init.f64", dtype="<f8").reshape(k, dim)


def fit(name, **options):
    model = KMeans(n_clusters=k, n_init=1, max_iter=300, tol=1e-4, random_state=seed, **options)
    start = time.perf_counter()
    model.fit(points)
    seconds = time.perf_counter() - start
    print(json.dumps({"fit": name, "seconds": seconds, "n_iter": int(model.n_iter_),
                      "inertia": float(model.inertia_)}), flush=True)


# Warm-up (imports, thread pool), not reported.
KMeans(n_clusters=k, n_init=1, max_iter=2, random_state=seed).fit(points[:10000])
fit("lloyd, k-means++ (its own)", algorithm="lloyd")
fit("lloyd, the same start", algorithm="lloyd", init=init)
fit("elkan, the same start", algorithm="elkan", init=init)
