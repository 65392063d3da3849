//! The statistics against SciPy and statsmodels on the same inputs
//! (`golden/make_golden.py` wrote `golden/golden.json`).
use assent_experiments::stats::{
    benjamini_hochberg, chi_square, cuped, holm, msprt, sample_ratio, sample_size_proportions,
    two_proportions, welch, Comparison, Interval, Moments, Paired, Proportion,
};
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn golden() -> Value {
    serde_json::from_str(include_str!("golden/golden.json")).unwrap()
}

#[track_caller]
fn close(got: f64, want: &Value, what: &str) {
    let want = want.as_f64().unwrap_or_else(|| panic!("{what}: {want}"));
    let err = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        err <= TOLERANCE || (got - want).abs() <= 1e-15,
        "{what}: ours {got:e}, reference {want:e} (relative error {err:e})"
    );
}

#[track_caller]
fn interval(got: Interval, want: &Value, what: &str) {
    close(got.estimate, &want[0], &format!("{what} estimate"));
    close(got.low, &want[1], &format!("{what} low"));
    close(got.high, &want[2], &format!("{what} high"));
}

fn proportion(v: &Value) -> Proportion {
    Proportion {
        n: v["n"].as_u64().unwrap(),
        x: v["x"].as_u64().unwrap(),
    }
}

fn moments(v: &Value) -> Moments {
    Moments {
        n: v["n"].as_u64().unwrap(),
        sum: v["sum"].as_f64().unwrap(),
        sum_sq: v["sum_sq"].as_f64().unwrap(),
    }
}

fn paired(v: &Value) -> Paired {
    let f = |k: &str| v[k].as_f64().unwrap();
    Paired {
        n: v["n"].as_u64().unwrap(),
        sum_y: f("sum_y"),
        sum_y2: f("sum_y2"),
        sum_x: f("sum_x"),
        sum_x2: f("sum_x2"),
        sum_xy: f("sum_xy"),
    }
}

#[track_caller]
fn welch_like(c: &Comparison, g: &Value, what: &str) {
    close(c.statistic, &g["t"], &format!("{what} t"));
    close(c.df.unwrap(), &g["df"], &format!("{what} df"));
    close(c.p_value, &g["p"], &format!("{what} p"));
    interval(c.absolute, &g["absolute"], &format!("{what} absolute"));
    interval(c.relative, &g["relative"], &format!("{what} relative"));
}

#[test]
fn proportions_equal_statsmodels_and_scipy() {
    let g = golden();
    let alpha = g["alpha"].as_f64().unwrap();
    for (i, case) in g["proportions"].as_array().unwrap().iter().enumerate() {
        let (a, b) = (proportion(&case["control"]), proportion(&case["treatment"]));
        let c = two_proportions(a, b, alpha).unwrap();
        close(c.statistic, &case["z"], &format!("case {i} z"));
        close(c.p_value, &case["p"], &format!("case {i} p"));
        interval(c.absolute, &case["absolute"], &format!("case {i} absolute"));
        interval(c.relative, &case["relative"], &format!("case {i} relative"));
        let (chi2, p) = chi_square(a, b).unwrap();
        close(chi2, &case["chi2"], &format!("case {i} chi2"));
        close(p, &case["chi2_p"], &format!("case {i} chi2 p"));
        let s = msprt(&c, a.n, b.n, 5_000.0, alpha).unwrap();
        close(s.p_value, &case["msprt"]["p"], &format!("case {i} msprt p"));
        interval(
            s.absolute,
            &case["msprt"]["absolute"],
            &format!("case {i} msprt"),
        );
    }
}

#[test]
fn welch_equals_scipy() {
    let g = golden();
    let alpha = g["alpha"].as_f64().unwrap();
    for (i, case) in g["means"].as_array().unwrap().iter().enumerate() {
        let (a, b) = (moments(&case["control"]), moments(&case["treatment"]));
        let c = welch(a, b, alpha).unwrap();
        welch_like(&c, case, &format!("case {i}"));
        let s = msprt(&c, a.n, b.n, 5_000.0, alpha).unwrap();
        close(s.p_value, &case["msprt"]["p"], &format!("case {i} msprt p"));
        interval(
            s.absolute,
            &case["msprt"]["absolute"],
            &format!("case {i} msprt"),
        );
    }
}

#[test]
fn cuped_equals_welch_on_the_adjusted_values_and_narrows_the_interval() {
    let g = golden();
    let alpha = g["alpha"].as_f64().unwrap();
    for (i, case) in g["cuped"].as_array().unwrap().iter().enumerate() {
        let (a, b) = (paired(&case["control"]), paired(&case["treatment"]));
        let (c, theta) = cuped(a, b, alpha).unwrap();
        close(theta, &case["theta"], &format!("case {i} theta"));
        welch_like(&c, case, &format!("case {i}"));
        let plain = |p: Paired| Moments {
            n: p.n,
            sum: p.sum_y,
            sum_sq: p.sum_y2,
        };
        let u = welch(plain(a), plain(b), alpha).unwrap();
        welch_like(&u, &case["unadjusted"], &format!("case {i} unadjusted"));
        assert!(
            c.absolute.high - c.absolute.low < 0.8 * (u.absolute.high - u.absolute.low),
            "case {i}: the pre-exposure metric explains much of the variance"
        );
    }
}

#[test]
fn corrections_equal_statsmodels() {
    let g = golden();
    let c = &g["corrections"];
    let p: Vec<f64> = c["p"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (name, got) in [("holm", holm(&p)), ("bh", benjamini_hochberg(&p))] {
        for (i, v) in got.iter().enumerate() {
            close(*v, &c[name][i], &format!("{name} {i}"));
        }
    }
}

#[test]
fn sample_ratio_mismatch_equals_scipy_and_flags_below_one_in_a_thousand() {
    let g = golden();
    for (i, case) in g["srm"].as_array().unwrap().iter().enumerate() {
        let observed: Vec<u64> = case["observed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let weights: Vec<f64> = case["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let s = sample_ratio(&observed, &weights).unwrap();
        close(
            s.statistic,
            &case["statistic"],
            &format!("case {i} statistic"),
        );
        close(s.p_value, &case["p"], &format!("case {i} p"));
        assert_eq!(s.mismatch, case["p"].as_f64().unwrap() < 0.001, "case {i}");
    }
}

#[test]
fn sample_sizes_equal_the_formula() {
    let g = golden();
    let alpha = g["alpha"].as_f64().unwrap();
    for case in g["sample_sizes"].as_array().unwrap() {
        let f = |k: &str| case[k].as_f64().unwrap();
        let n = sample_size_proportions(f("baseline"), f("mde"), alpha, f("power")).unwrap();
        assert_eq!(n, case["n"].as_u64().unwrap(), "{case}");
    }
}
