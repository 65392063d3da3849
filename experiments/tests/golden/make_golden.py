"""Writes golden.json: the statistics of experiments/ computed by SciPy and statsmodels
(and, where no library has the formula, NumPy by the formula the crate documents) on
fixed inputs. Run from the repository root with the venv's Python:

    target/venv/bin/pip install scipy statsmodels
    target/venv/bin/python experiments/tests/golden/make_golden.py
"""
import json
import math
import pathlib

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

ALPHA = 0.05
OUT = pathlib.Path(__file__).with_name("golden.json")


def rel_interval(a, var_a, b, var_b, q):
    est = b / a - 1
    var = var_b / a**2 + b**2 * var_a / a**4
    half = q * math.sqrt(var)
    return [est, est - half, est + half]


def proportions(case):
    (na, xa), (nb, xb) = case
    z, p = proportions_ztest([xb, xa], [nb, na])
    low, high = confint_proportions_2indep(xb, nb, xa, na, method="wald", compare="diff", alpha=ALPHA)
    chi2, chi_p, _, _ = stats.chi2_contingency([[xa, na - xa], [xb, nb - xb]], correction=False)
    pa, pb = xa / na, xb / nb
    q = stats.norm.ppf(1 - ALPHA / 2)
    return {
        "control": {"n": na, "x": xa}, "treatment": {"n": nb, "x": xb},
        "z": z, "p": p, "absolute": [pb - pa, low, high],
        "relative": rel_interval(pa, pa * (1 - pa) / na, pb, pb * (1 - pb) / nb, q),
        "chi2": chi2, "chi2_p": chi_p,
    }


def moments(v):
    v = np.asarray(v, dtype=float)
    return {"n": len(v), "sum": float(v.sum()), "sum_sq": float((v * v).sum())}


def welch(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    r = stats.ttest_ind(b, a, equal_var=False)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    qt = stats.t.ppf(1 - ALPHA / 2, df)
    q = stats.norm.ppf(1 - ALPHA / 2)
    d = b.mean() - a.mean()
    return {
        "t": float(r.statistic), "p": float(r.pvalue), "df": df,
        "absolute": [d, d - qt * se, d + qt * se],
        "relative": rel_interval(a.mean(), va, b.mean(), vb, q),
        "std_error": se,
    }


def paired(xs, ys):
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    return {"n": len(xs), "sum_y": float(ys.sum()), "sum_y2": float((ys * ys).sum()),
            "sum_x": float(xs.sum()), "sum_x2": float((xs * xs).sum()), "sum_xy": float((xs * ys).sum())}


def cuped(ca, cb):
    (xa, ya), (xb, yb) = ca, cb
    x = np.concatenate([xa, xb])
    y = np.concatenate([ya, yb])
    theta = np.cov(x, y, ddof=1)[0, 1] / np.var(x, ddof=1)
    adj = lambda xs, ys: np.asarray(ys, float) - theta * (np.asarray(xs, float) - x.mean())
    out = welch(adj(xa, ya), adj(xb, yb))
    out["theta"] = theta
    return out


def msprt(d, se, na, nb, tuning):
    v = se * se
    sigma2 = v / (1 / na + 1 / nb)
    tau2 = 2 * sigma2 / tuning
    lam = math.sqrt(v / (v + tau2)) * math.exp(tau2 * d * d / (2 * v * (v + tau2)))
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / ALPHA) + math.log((v + tau2) / v)))
    return {"p": min(1.0, 1 / lam), "absolute": [d, d - half, d + half], "tau2": tau2}


def main():
    rng = np.random.default_rng(7)
    cases = [((10_000, 1_000), (10_000, 1_100)), ((5_000, 250), (5_200, 240)), ((123, 17), (131, 29)),
             ((1_000_000, 31_234), (1_000_000, 31_900))]
    props = [proportions(c) for c in cases]
    for c, out in zip(cases, props):
        pa, pb = c[0][1] / c[0][0], c[1][1] / c[1][0]
        se = math.sqrt(pa * (1 - pa) / c[0][0] + pb * (1 - pb) / c[1][0])
        out["msprt"] = msprt(pb - pa, se, c[0][0], c[1][0], 5_000)

    means = []
    for n_a, n_b, mu_a, mu_b, sd_a, sd_b in [(200, 180, 10.0, 10.8, 3.0, 4.5), (50, 70, 1.0, 1.0, 0.5, 2.0),
                                            (5_000, 5_000, 42.0, 42.5, 20.0, 21.0)]:
        a = np.round(rng.normal(mu_a, sd_a, n_a), 3)
        b = np.round(rng.normal(mu_b, sd_b, n_b), 3)
        w = welch(a, b)
        w["msprt"] = msprt(w["absolute"][0], w["std_error"], n_a, n_b, 5_000)
        means.append({"control": moments(a), "treatment": moments(b), **w})

    cupeds = []
    for n, lift, noise in [(400, 0.3, 1.0), (2_000, 0.0, 2.0)]:
        xa = np.round(rng.gamma(2.0, 5.0, n), 3)
        xb = np.round(rng.gamma(2.0, 5.0, n), 3)
        ya = np.round(0.8 * xa + rng.normal(0, noise, n), 3)
        yb = np.round(0.8 * xb + lift + rng.normal(0, noise, n), 3)
        out = cuped((xa, ya), (xb, yb))
        cupeds.append({"control": paired(xa, ya), "treatment": paired(xb, yb), **out,
                       "unadjusted": welch(ya, yb)})

    pvalues = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.8, 0.0001]
    corrections = {"p": pvalues, "holm": list(multipletests(pvalues, method="holm")[1]),
                   "bh": list(multipletests(pvalues, method="fdr_bh")[1])}

    srm = []
    for observed, weights in [([5_000, 5_100], [0.5, 0.5]), ([5_000, 5_400], [0.5, 0.5]),
                              ([3_300, 3_350, 3_200], [1 / 3, 1 / 3, 1 / 3]), ([900, 2_150], [0.3, 0.7])]:
        total = sum(observed)
        r = stats.chisquare(observed, [total * w / sum(weights) for w in weights])
        srm.append({"observed": observed, "weights": weights, "statistic": float(r.statistic),
                    "p": float(r.pvalue)})

    sizes = []
    for base, mde, power in [(0.1, 0.1, 0.8), (0.03, 0.05, 0.9), (0.5, -0.02, 0.8)]:
        p1, p2 = base, base * (1 + mde)
        z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(power)
        sizes.append({"baseline": base, "mde": mde, "power": power,
                      "n": math.ceil(z * z * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2)})

    OUT.write_text(json.dumps({
        "generated_by": f"make_golden.py with SciPy {scipy.__version__}, statsmodels "
                        f"{statsmodels.__version__}, NumPy {np.__version__}",
        "alpha": ALPHA, "proportions": props, "means": means, "cuped": cupeds,
        "corrections": corrections, "srm": srm, "sample_sizes": sizes,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
