"""Writes gmm.json: small inputs and what scikit-learn's GaussianMixture makes of them
from a given start, the oracle for tests/gmm_golden.rs. Run from this folder with
scikit-learn installed:

    ../../../target/venv/bin/python make_gmm.py
"""
import json

import numpy as np
import sklearn
from sklearn.mixture import GaussianMixture

rng = np.random.default_rng(20261202)
cases = []
for name, n, dim, k, spread in [("blobs-2d", 300, 2, 3, 1.0), ("overlapping-4d", 400, 4, 3, 2.5),
                                ("uniform-3d", 300, 3, 4, None)]:
    if spread is None:
        points = rng.random((n, dim))
    else:
        centres = rng.normal(0, 4, (k, dim))
        points = np.concatenate([rng.normal(c, spread * rng.uniform(0.5, 1.5, dim), (n // k, dim))
                                 for c in centres])
    means = points[rng.choice(len(points), k, replace=False)]
    weights = np.full(k, 1.0 / k)
    var = points.var(axis=0)
    for covariance in ["full", "diag"]:
        if covariance == "full":
            covs = np.array([np.diag(var) for _ in range(k)])
            precisions = np.array([np.linalg.inv(c) for c in covs])
        else:
            covs = np.array([var for _ in range(k)])
            precisions = 1.0 / covs
        model = GaussianMixture(n_components=k, covariance_type=covariance, weights_init=weights,
                                means_init=means, precisions_init=precisions, max_iter=200,
                                tol=1e-6, random_state=0).fit(points)
        probe = points[:5]
        cases.append({
            "name": f"{name}-{covariance}", "dim": dim, "k": k, "covariance": covariance,
            "points": points.ravel().tolist(),
            "init": {"weights": weights.tolist(), "means": means.ravel().tolist(),
                     "covariances": covs.ravel().tolist()},
            "weights": model.weights_.tolist(), "means": model.means_.ravel().tolist(),
            "covariances": model.covariances_.ravel().tolist(),
            "lower_bound": float(model.lower_bound_), "n_iter": int(model.n_iter_),
            "converged": bool(model.converged_), "score": float(model.score(points)),
            "bic": float(model.bic(points)), "proba": model.predict_proba(probe).ravel().tolist(),
        })
json.dump({"scikit_learn": sklearn.__version__, "cases": cases}, open("gmm.json", "w"))
print(f"gmm.json: {len(cases)} cases, scikit-learn {sklearn.__version__}")
