"""Writes kmeans.json: small inputs and what scikit-learn's KMeans makes of them, the
oracle for tests/kmeans_golden.rs. Run from this folder with scikit-learn installed:

    ../../../target/venv/bin/python make_kmeans.py
"""
import json

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

rng = np.random.default_rng(20261201)
cases = []
for name, n, dim, k, spread in [("blobs-2d", 300, 2, 3, 1.0), ("overlapping-5d", 500, 5, 4, 3.0),
                                ("uniform-8d", 400, 8, 6, None)]:
    if spread is None:
        points = rng.random((n, dim))
    else:
        centres = rng.normal(0, 4, (k, dim))
        points = np.concatenate([rng.normal(c, spread, (n // k, dim)) for c in centres])
    init = points[rng.choice(len(points), k, replace=False)]
    model = KMeans(n_clusters=k, init=init, n_init=1, max_iter=300, tol=1e-4,
                   algorithm="lloyd").fit(points)
    cases.append({
        "name": name, "dim": dim, "k": k,
        "points": points.ravel().tolist(), "init": init.ravel().tolist(),
        "centroids": model.cluster_centers_.ravel().tolist(),
        "inertia": float(model.inertia_), "n_iter": int(model.n_iter_),
        "labels": model.labels_.tolist(),
        "silhouette": float(silhouette_score(points, model.labels_)),
    })
json.dump({"scikit_learn": sklearn.__version__, "cases": cases}, open("kmeans.json", "w"))
print(f"kmeans.json: {len(cases)} cases, scikit-learn {sklearn.__version__}")
