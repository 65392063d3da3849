"""scikit-learn on the matrices benches/compare.rs wrote, for the same-run comparison.

Usage: compare_sklearn.py DIR   (DIR holds tasks.json and each task's .f64 files)
Prints one JSON line per task: {"name", "seconds", "n_iter", "inertia" | "log_likelihood"}.
"""
import json
import sys
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

folder = sys.argv[1]
tasks = json.load(open(f"{folder}/tasks.json"))


def load(name, shape):
    return np.fromfile(f"{folder}/{name}", dtype="<f8").reshape(shape)


# Warm-up (imports, thread pools), not reported.
GaussianMixture(2, max_iter=2).fit(np.random.default_rng(0).random((2000, 4)))
KMeans(2, n_init=1, max_iter=2).fit(np.random.default_rng(0).random((2000, 4)))

for t in tasks:
    n, d, k = t["n"], t["dim"], t["k"]
    points = load(t["points"], (n, d))
    means = load(t["means"], (k, d))
    if t["model"] == "kmeans":
        model = KMeans(k, init=means, n_init=1, max_iter=300, tol=1e-4, algorithm="lloyd")
        start = time.perf_counter()
        model.fit(points)
        seconds = time.perf_counter() - start
        out = {"inertia": float(model.inertia_)}
    else:
        cov = t["model"].split("-")[1]
        variances = load(t["covariances"], (k, d) if cov == "diag" else (k, d, d))
        precisions = 1.0 / variances if cov == "diag" else np.linalg.inv(variances)
        model = GaussianMixture(k, covariance_type=cov, weights_init=np.full(k, 1.0 / k),
                                means_init=means, precisions_init=precisions, max_iter=t["max_iter"],
                                tol=1e-3, random_state=0)
        start = time.perf_counter()
        model.fit(points)
        seconds = time.perf_counter() - start
        out = {"log_likelihood": float(model.score(points))}
    print(json.dumps({"name": t["name"], "seconds": seconds, "n_iter": int(model.n_iter_), **out}),
          flush=True)
