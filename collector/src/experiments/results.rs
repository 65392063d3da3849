//! An experiment's results: visitors per variant and the sample-ratio check, each
//! metric per variant against the control (rates: two-proportion z-test and
//! chi-square; means: Welch's t-test; always-valid intervals when sequential), p-values
//! adjusted across variants and metrics (Holm, Benjamini–Hochberg), the fixed-horizon
//! sample size, and a verdict in words that declares no winner early.

use assent_experiments::stats::{
    benjamini_hochberg, chi_square, cuped, holm, msprt, sample_ratio, sample_size_means,
    sample_size_proportions, two_proportions, welch, Comparison, Moments, Paired, Proportion,
};
use serde_json::{json, Value};

use super::definitions::{Experiment, Metric};
use crate::storage::experiments::MetricSums;
use crate::{
    error::Result,
    storage::{self, Db},
};

struct Row {
    metric: usize,
    variant: usize,
    comparison: Comparison,
    /// The always-valid p-value, when sequential.
    sequential: Option<f64>,
}

pub async fn of(db: &Db, e: &Experiment, now_ms: i64) -> Result<Value> {
    let k = e.def.variants.len();
    let mut visitors = vec![0u64; k];
    for (v, n) in storage::experiments::exposed_per_variant(db, &e.name).await? {
        if let Some(slot) = visitors.get_mut(v as usize) {
            *slot = n as u64;
        }
    }
    let srm = sample_ratio(&visitors, e.split.weights()).ok();
    let alpha = e.def.alpha;
    let metrics: Vec<&Metric> = e.metrics().collect();
    let mut blocks = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut primary_control: Option<(bool, f64, f64)> = None;
    for (mi, m) in metrics.iter().enumerate() {
        let rate = m.kind.is_rate();
        let mut full = vec![MetricSums::default(); k];
        for (v, x) in storage::experiments::metric_sums(db, &e.name, &m.name, rate).await? {
            if let Some(slot) = full.get_mut(v as usize) {
                *slot = x;
            }
        }
        let sums: Vec<(u64, f64, f64)> = full
            .iter()
            .map(|x| (x.positive.max(0) as u64, x.sum, x.sum_sq))
            .collect();
        // CUPED when the pre-exposure values vary (visitors seen before exposure).
        let with_pre = e.def.cuped && full.iter().any(|x| x.sum_pre_sq > 0.0);
        let paired = |i: usize| Paired {
            n: visitors[i],
            sum_y: full[i].sum,
            sum_y2: full[i].sum_sq,
            sum_x: full[i].sum_pre,
            sum_x2: full[i].sum_pre_sq,
            sum_xy: full[i].sum_pre_value,
        };
        let per_variant: Vec<Value> = (0..k)
            .map(|v| {
                let (n, s, _) = sums[v];
                let base = json!({"variant": e.def.variants[v], "visitors": visitors[v]});
                let mut o = base;
                if rate {
                    o["conversions"] = json!(n);
                    o["rate"] = json!(if visitors[v] > 0 {
                        n as f64 / visitors[v] as f64
                    } else {
                        0.0
                    });
                } else {
                    o["sum"] = json!(s);
                    o["mean"] = json!(if visitors[v] > 0 {
                        s / visitors[v] as f64
                    } else {
                        0.0
                    });
                }
                o
            })
            .collect();
        if mi == 0 && visitors[0] > 1 {
            let (n, s, s2) = sums[0];
            let v0 = visitors[0] as f64;
            let (mean, var) = if rate {
                let p = n as f64 / v0;
                (p, p * (1.0 - p))
            } else {
                let mean = s / v0;
                (mean, ((s2 - s * mean) / (v0 - 1.0)).max(0.0))
            };
            primary_control = Some((rate, mean, var.sqrt()));
        }
        let mut comparisons = Vec::new();
        for v in 1..k {
            let result = if rate {
                let p = |i: usize| Proportion {
                    n: visitors[i],
                    x: sums[i].0.min(visitors[i]),
                };
                two_proportions(p(0), p(v), alpha)
                    .map(|c| (c, chi_square(p(0), p(v)).ok(), "two-proportion z"))
            } else {
                let m = |i: usize| Moments {
                    n: visitors[i],
                    sum: sums[i].1,
                    sum_sq: sums[i].2,
                };
                welch(m(0), m(v), alpha).map(|c| (c, None, "Welch's t"))
            };
            match result {
                Ok((plain, chi, test)) => {
                    let mut o = json!({"variant": e.def.variants[v], "test": test,
                        "absolute": plain.absolute, "relative": plain.relative,
                        "statistic": plain.statistic, "pValue": plain.p_value});
                    let mut c = plain;
                    if with_pre {
                        if let Ok((adjusted, theta)) = cuped(paired(0), paired(v), alpha) {
                            let narrower = 1.0
                                - (adjusted.std_error / plain.std_error.max(f64::MIN_POSITIVE))
                                    .powi(2);
                            o["cuped"] = json!({"absolute": adjusted.absolute, "relative": adjusted.relative,
                                "pValue": adjusted.p_value, "theta": theta, "varianceReduction": narrower});
                            c = adjusted;
                        }
                    }
                    o["decidedBy"] = json!(if with_pre && o.get("cuped").is_some() {
                        "cuped"
                    } else {
                        "test"
                    });
                    if let Some(df) = plain.df {
                        o["df"] = json!(df);
                    }
                    if let Some((stat, p)) = chi {
                        o["chiSquare"] = json!({"statistic": stat, "pValue": p});
                    }
                    let mut sequential = None;
                    if e.def.sequential {
                        if let Ok(s) =
                            msprt(&c, visitors[0], visitors[v], e.def.sequential_tuning, alpha)
                        {
                            o["sequential"] = json!({"absolute": s.absolute, "pValue": s.p_value});
                            sequential = Some(s.p_value);
                        }
                    }
                    rows.push(Row {
                        metric: mi,
                        variant: v,
                        comparison: c,
                        sequential,
                    });
                    comparisons.push(o);
                }
                Err(err) => comparisons
                    .push(json!({"variant": e.def.variants[v], "error": err.to_string()})),
            }
        }
        blocks.push(
            json!({"name": m.name, "kind": m.kind, "event": m.event, "primary": mi == 0,
                           "variants": per_variant, "comparisons": comparisons}),
        );
    }
    // Adjusted across every comparison of every metric.
    let p: Vec<f64> = rows.iter().map(|r| r.comparison.p_value).collect();
    let (h, bh) = (holm(&p), benjamini_hochberg(&p));
    for (i, r) in rows.iter().enumerate() {
        let list = blocks[r.metric]["comparisons"]
            .as_array_mut()
            .expect("an array");
        if let Some(o) = list
            .iter_mut()
            .find(|o| o["variant"] == e.def.variants[r.variant] && o.get("error").is_none())
        {
            o["pHolm"] = json!(h[i]);
            o["pBenjaminiHochberg"] = json!(bh[i]);
        }
    }
    let needed = primary_control.and_then(|(rate, mean, sd)| {
        if rate {
            sample_size_proportions(mean, e.def.mde, alpha, e.def.power).ok()
        } else {
            sample_size_means(sd, e.def.mde * mean.abs(), alpha, e.def.power).ok()
        }
    });
    let fewest = visitors.iter().copied().min().unwrap_or(0);
    let reached = needed.is_some_and(|n| fewest >= n);
    // What the verdict goes by: the always-valid p-values when sequential, adjusted.
    let decide = if e.def.sequential {
        holm(
            &rows
                .iter()
                .map(|r| r.sequential.unwrap_or(1.0))
                .collect::<Vec<_>>(),
        )
    } else {
        h.clone()
    };
    let verdict = verdict(e, &srm, needed, reached, &rows, &decide);
    Ok(json!({
        "experiment": e.name,
        "running": e.running(now_ms),
        "variants": e.def.variants.iter().zip(e.split.weights()).zip(&visitors)
            .map(|((v, w), n)| json!({"variant": v, "weight": w, "visitors": n})).collect::<Vec<_>>(),
        "srm": srm.map(|s| json!({"statistic": s.statistic, "pValue": s.p_value, "checked": s.checked, "mismatch": s.mismatch})),
        "sampleSize": {"perVariant": needed, "reached": reached, "mde": e.def.mde, "power": e.def.power},
        "sequential": e.def.sequential,
        "alpha": alpha,
        "metrics": blocks,
        "verdict": verdict,
    }))
}

fn verdict(
    e: &Experiment,
    srm: &Option<assent_experiments::stats::Srm>,
    needed: Option<u64>,
    reached: bool,
    rows: &[Row],
    decide: &[f64],
) -> String {
    if let Some(s) = srm.filter(|s| s.mismatch) {
        return format!(
            "Sample ratio mismatch (p = {:.2e}): visitors are not split as the weights say, so the split or the counting is broken and no figure here can be trusted.",
            s.p_value
        );
    }
    if !e.def.sequential && !reached {
        return match needed {
            Some(n) => format!(
                "Not enough visitors yet: {n} per variant are needed to detect a {:+.0} % change at {:.0} % power; no winner is declared before then (or turn the sequential option on).",
                e.def.mde * 100.0,
                e.def.power * 100.0
            ),
            None => "Not enough data yet to judge.".into(),
        };
    }
    let primary: Vec<(usize, &Row)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.metric == 0)
        .collect();
    let winners: Vec<String> = primary
        .iter()
        .filter(|(i, _)| decide[*i] < e.def.alpha)
        .map(|(_, r)| {
            let c = &r.comparison;
            format!(
                "{} {} the control on {} ({:+.1} %, {:.0} % interval {:+.1} % to {:+.1} %)",
                e.def.variants[r.variant],
                if c.absolute.estimate > 0.0 {
                    "beats"
                } else {
                    "does worse than"
                },
                e.def.primary.name,
                c.relative.estimate * 100.0,
                (1.0 - e.def.alpha) * 100.0,
                c.relative.low * 100.0,
                c.relative.high * 100.0
            )
        })
        .collect();
    if winners.is_empty() {
        format!(
            "No significant difference on {} (adjusted p ≥ {}): keep the control, or run longer for a smaller effect.",
            e.def.primary.name, e.def.alpha
        )
    } else {
        winners.join("; ") + "."
    }
}

/// The results as a plain-text table (what `assent-collector experiments results`
/// prints).
pub fn table(r: &Value) -> String {
    let mut out = String::new();
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let sample = &r["sampleSize"];
    out.push_str(&format!(
        "experiment {} ({}), alpha {}, {}\n",
        r["experiment"].as_str().unwrap_or(""),
        if r["running"] == true {
            "running"
        } else {
            "stopped"
        },
        f(&r["alpha"]),
        if r["sequential"] == true {
            "sequential (always-valid p-values)".to_owned()
        } else {
            match sample["perVariant"].as_u64() {
                Some(n) => format!(
                    "fixed horizon {n} visitors per variant ({})",
                    if sample["reached"] == true {
                        "reached"
                    } else {
                        "not reached"
                    }
                ),
                None => "fixed horizon unknown yet".to_owned(),
            }
        }
    ));
    out.push_str(&format!(
        "{:<14}{:>8}{:>10}\n",
        "variant", "weight", "visitors"
    ));
    for v in r["variants"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<14}{:>8.2}{:>10}\n",
            v["variant"].as_str().unwrap_or(""),
            f(&v["weight"]),
            v["visitors"].as_u64().unwrap_or(0)
        ));
    }
    match r["srm"].as_object() {
        Some(s) => out.push_str(&format!(
            "sample ratio: chi-square {:.2}, p {:.3e}{}\n",
            s["statistic"].as_f64().unwrap_or(f64::NAN),
            s["pValue"].as_f64().unwrap_or(f64::NAN),
            if s["mismatch"] == true {
                " — MISMATCH"
            } else if s["checked"] == true {
                " (ok)"
            } else {
                " (not checked: fewer than 8 visitors in a variant)"
            }
        )),
        None => out.push_str("sample ratio: not computed\n"),
    }
    for m in r["metrics"].as_array().into_iter().flatten() {
        let rate = m["kind"] == "conversion" || m["kind"] == "click_through";
        out.push_str(&format!(
            "\n{} ({}{}, event {:?})\n",
            m["name"].as_str().unwrap_or(""),
            m["kind"].as_str().unwrap_or(""),
            if m["primary"] == true {
                ", primary"
            } else {
                ", guardrail"
            },
            m["event"].as_str().unwrap_or("")
        ));
        out.push_str(&format!(
            "{:<14}{:>10}{:>12}{:>10}  {:<30}{:<30}{:>10}{:>10}{:>10}\n",
            "variant",
            "visitors",
            if rate { "conversions" } else { "sum" },
            if rate { "rate" } else { "mean" },
            "change (interval)",
            "relative (interval)",
            "p",
            "p Holm",
            "p BH"
        ));
        let comparisons = m["comparisons"].as_array().cloned().unwrap_or_default();
        for v in m["variants"].as_array().into_iter().flatten() {
            let name = v["variant"].as_str().unwrap_or("");
            let (count, level) = if rate {
                (
                    v["conversions"].to_string(),
                    format!("{:.2} %", f(&v["rate"]) * 100.0),
                )
            } else {
                (
                    format!("{:.2}", f(&v["sum"])),
                    format!("{:.3}", f(&v["mean"])),
                )
            };
            let mut line = format!(
                "{name:<14}{:>10}{count:>12}{level:>10}",
                v["visitors"].as_u64().unwrap_or(0)
            );
            if let Some(c) = comparisons.iter().find(|c| c["variant"] == name) {
                if let Some(e) = c["error"].as_str() {
                    line.push_str(&format!("  {e}"));
                } else {
                    let (a, rel) = (&c["absolute"], &c["relative"]);
                    let scale = if rate { 100.0 } else { 1.0 };
                    let abs = format!(
                        "{:+.2}{} [{:+.2}, {:+.2}]",
                        f(&a["estimate"]) * scale,
                        if rate { " pp" } else { "" },
                        f(&a["low"]) * scale,
                        f(&a["high"]) * scale
                    );
                    let relative = if f(&rel["estimate"]).is_finite() {
                        format!(
                            "{:+.1} % [{:+.1}, {:+.1}]",
                            f(&rel["estimate"]) * 100.0,
                            f(&rel["low"]) * 100.0,
                            f(&rel["high"]) * 100.0
                        )
                    } else {
                        "— (the control is 0)".to_owned()
                    };
                    line.push_str(&format!(
                        "  {abs:<30}{relative:<30}{:>10.2e}{:>10.2e}{:>10.2e}",
                        f(&c["pValue"]),
                        f(&c["pHolm"]),
                        f(&c["pBenjaminiHochberg"])
                    ));
                    if let Some(x) = c["cuped"].as_object() {
                        line.push_str(&format!(
                            "  CUPED {:+.2} [{:+.2}, {:+.2}] p {:.2e}",
                            f(&x["absolute"]["estimate"]) * scale,
                            f(&x["absolute"]["low"]) * scale,
                            f(&x["absolute"]["high"]) * scale,
                            x["pValue"].as_f64().unwrap_or(f64::NAN)
                        ));
                    }
                    if let Some(s) = c["sequential"].as_object() {
                        line.push_str(&format!(
                            "  always-valid p {:.2e}, [{:+.3}, {:+.3}]",
                            s["pValue"].as_f64().unwrap_or(f64::NAN),
                            f(&s["absolute"]["low"]) * scale,
                            f(&s["absolute"]["high"]) * scale
                        ));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\nverdict: {}\n",
        r["verdict"].as_str().unwrap_or("")
    ));
    out
}
