"""Writes impute.json: matrices with missing values and scikit-learn's KNNImputer
output, the oracle for tests/impute_golden.rs. Run from this folder with scikit-learn:

    ../../../target/venv/bin/python make_impute.py
"""
import json

import numpy as np
import sklearn
from sklearn.impute import KNNImputer

rng = np.random.default_rng(20261202)
cases = []
for name, n, dim, k, missing in [("sparse-6d", 200, 6, 5, 0.15), ("dense-3d", 120, 3, 3, 0.05),
                                 ("half-missing-8d", 150, 8, 7, 0.5)]:
    X = rng.normal(0, 1, (n, dim)) * rng.uniform(0.5, 20, dim) + rng.normal(0, 5, dim)
    X[rng.random((n, dim)) < missing] = np.nan
    # Keep every feature present somewhere (scikit-learn would drop it).
    X[0] = rng.normal(0, 1, dim)
    filled = KNNImputer(n_neighbors=k).fit_transform(X)
    cases.append({"name": name, "dim": dim, "k": k,
                  "rows": [None if np.isnan(v) else v for v in X.ravel().tolist()],
                  "filled": filled.ravel().tolist()})
json.dump({"scikit_learn": sklearn.__version__, "cases": cases}, open("impute.json", "w"))
print(f"impute.json: {len(cases)} cases, scikit-learn {sklearn.__version__}")
