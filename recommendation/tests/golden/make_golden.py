"""Golden values from `implicit` and NumPy for the recommendation crate's tests.

Writes golden.json: a small seeded 0/1 users-by-items matrix, the item-item similarities
implicit's BM25Recommender (K1=100, B=0.8) and CosineRecommender compute on it (K as
large as the catalogue, so every pair is kept and the weighting alone is compared), and
EASE's weights by the closed form in NumPy (λ = 10).

Run: python make_golden.py   (numpy, scipy and implicit from PyPI)
"""
import json

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

rng = np.random.default_rng(2026)
users, items = 30, 12
dense = (rng.random((users, items)) < 0.3).astype(np.float32)
x = sp.csr_matrix(dense)


def similarity(model):
    model.fit(x, show_progress=False)
    s = model.similarity.toarray().astype(float)
    np.fill_diagonal(s, 0.0)  # implicit keeps an item among its own neighbours; we do not
    return s.tolist()


g = (x.T @ x).toarray().astype(np.float64)
g[np.diag_indices(items)] += 10.0
p = np.linalg.inv(g)
b = p / (-np.diag(p))
b[np.diag_indices(items)] = 0.0

rows, cols = x.nonzero()
json.dump(
    {
        "users": users,
        "items": items,
        "pairs": [[int(r), int(c)] for r, c in zip(rows, cols)],
        "bm25": similarity(BM25Recommender(K=items, K1=100.0, B=0.8)),
        "cosine": similarity(CosineRecommender(K=items)),
        "ease_lambda": 10.0,
        "ease": b.tolist(),
    },
    open("golden.json", "w"),
    indent=None,
)
