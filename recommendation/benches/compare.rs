//! Our models against `implicit` (ALS, BPR, item-kNN) and an EASE in NumPy on
//! goodbooks-10k, read at run time from `../shared/data/` (`SHARED_DATA`): the ratings
//! (981,756, every rated book a positive) and the "to read" marks (912,705). One seeded
//! random 80/20 split of the distinct (user, item) pairs; each family's grid (the same
//! for both sides) searched on a second 80/20 split of the training pairs; the best
//! refitted on all training pairs, timed, and ranked over the full catalogue with
//! training items left out. NDCG@10 and the rest are computed for every list, ours
//! included, by the Python script (`benches/compare_implicit.py`), and by ours for
//! ours as a check. Then content-based (book tags), a hybrid, popularity, and cold-start
//! users (10 % held out entirely). `implicit` runs from `target/venv/bin/python` (or
//! `PYTHON`). `RECS_DATASETS=ratings,to_read` picks the data; `RECS_QUICK=1` takes
//! each grid's first point only.
use std::{collections::HashMap, io::Write, path::PathBuf, process::Command, time::Instant};

use assent_recommendation::{
    als::AlsParams,
    content::ContentParams,
    ease::EaseParams,
    hybrid::Blend,
    knn::{ItemKnnParams, Weighting},
    metrics::{evaluate, Protocol, Report},
    popularity::Popularity,
    split::{self, Interaction},
    vocab::Vocabulary,
    Csr, Scorer,
};
use serde_json::{json, Value};

const SEED: u64 = 42;
/// Other starts of the best ALS on each side: how much the random start alone moves it.
const SEEDS: [u64; 7] = [1, 2, 3, 4, 5, 6, 7];
const K: usize = 10;

struct Dataset {
    name: &'static str,
    users: usize,
    items: Vocabulary,
    pairs: Vec<Interaction>,
}

fn read_csv(path: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .skip(1)
        .map(|l| {
            l.trim_end_matches('\r')
                .split(',')
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// Items in book_id order (1..=10,000), so both datasets share one catalogue.
fn books(dir: &str) -> (Vocabulary, HashMap<String, u32>) {
    let mut items = Vocabulary::new();
    let mut by_goodreads = HashMap::new();
    let text = std::fs::read_to_string(format!("{dir}/goodbooks-10k/books.csv")).unwrap();
    for line in text.lines().skip(1) {
        let mut f = line.splitn(3, ',');
        let (id, goodreads) = (f.next().unwrap(), f.next().unwrap());
        let i = items.insert(id);
        by_goodreads.insert(goodreads.to_owned(), i);
    }
    (items, by_goodreads)
}

fn dataset(dir: &str, name: &'static str, items: &Vocabulary) -> Dataset {
    let (file, user_col, book_col) = match name {
        "ratings" => ("ratings.csv", 1, 0),
        _ => ("to_read.csv", 0, 1),
    };
    let mut users = Vocabulary::new();
    let mut pairs = Vec::new();
    for row in read_csv(&format!("{dir}/goodbooks-10k/{file}")) {
        let user = users.insert(&row[user_col]);
        let item = items
            .get(&row[book_col])
            .expect("every book_id is in books.csv");
        pairs.push(Interaction {
            user,
            item,
            value: 1.0,
            time: 0,
        });
    }
    Dataset {
        name,
        users: users.len(),
        items: items.clone(),
        pairs,
    }
}

/// Items by tags, counts as applied by Goodreads users (6 negative counts as found are
/// left out).
fn book_tags(dir: &str, by_goodreads: &HashMap<String, u32>, items: usize) -> Csr {
    let mut tags = Vocabulary::new();
    let mut t = Vec::new();
    for row in read_csv(&format!("{dir}/goodbooks-10k/book_tags.csv")) {
        let count: f32 = row[2].parse().unwrap_or(0.0);
        if count > 0.0 {
            t.push((by_goodreads[&row[0]], tags.insert(&row[1]), count));
        }
    }
    Csr::from_triplets(items, tags.len(), &t).unwrap()
}

fn write_pairs(path: &PathBuf, pairs: &[Interaction]) {
    let mut out = Vec::with_capacity(pairs.len() * 8);
    for p in pairs {
        out.extend_from_slice(&p.user.to_le_bytes());
        out.extend_from_slice(&p.item.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

fn write_lists(path: &PathBuf, lists: &[(u32, Vec<u32>)]) {
    let mut out = Vec::new();
    for (u, items) in lists {
        out.extend_from_slice(&u.to_le_bytes());
        for k in 0..K {
            out.extend_from_slice(&items.get(k).copied().unwrap_or(u32::MAX).to_le_bytes());
        }
    }
    std::fs::write(path, out).unwrap();
}

/// The grid both sides search. ALS's `confidence` is a positive's confidence: `implicit`
/// takes it as `alpha` (its confidence is alpha × value, the value here 1); ours is
/// `1 + alpha × value`, so ours gets `alpha = confidence − 1`: the same loss.
fn grid(quick: bool) -> Value {
    let mut als = Vec::new();
    for factors in [64, 128] {
        for regularization in [0.1, 1.0, 10.0] {
            for confidence in [5.0, 20.0] {
                // Conjugate-gradient steps per solve (`implicit`'s `cg_steps`, 3 by
                // default): fewer steps stop each solve early, which ranks better here.
                for cg_steps in [1, 3] {
                    als.push(json!({"factors": factors, "regularization": regularization,
                        "confidence": confidence, "iterations": 15, "cg_steps": cg_steps}));
                }
            }
        }
    }
    let mut knn = Vec::new();
    for neighbours in [50, 100, 200, 400] {
        knn.push(json!({"weighting": "bm25", "neighbours": neighbours, "k1": 100.0, "b": 0.8}));
        knn.push(json!({"weighting": "cosine", "neighbours": neighbours}));
    }
    let mut bpr = Vec::new();
    for factors in [64, 128] {
        for learning_rate in [0.01, 0.05] {
            bpr.push(json!({"factors": factors, "learning_rate": learning_rate,
                "regularization": 0.01, "iterations": 100}));
        }
    }
    let ease: Vec<Value> = [250.0, 500.0, 1000.0, 2000.0]
        .iter()
        .map(|l| json!({ "lambda": l }))
        .collect();
    let mut g = json!({"als": als, "knn": knn, "bpr": bpr, "ease": ease});
    if quick {
        for (_, v) in g.as_object_mut().unwrap() {
            v.as_array_mut().unwrap().truncate(1);
        }
    }
    g
}

/// Our ALS for a grid point of [`grid`], from random start `seed`.
fn als_params(p: &Value, seed: u64) -> AlsParams {
    AlsParams {
        factors: p["factors"].as_u64().unwrap() as usize,
        regularization: p["regularization"].as_f64().unwrap() as f32,
        alpha: p["confidence"].as_f64().unwrap() as f32 - 1.0,
        iterations: p["iterations"].as_u64().unwrap() as usize,
        cg_steps: p["cg_steps"].as_u64().unwrap() as usize,
        seed,
    }
}

enum Fitted {
    Als(assent_recommendation::als::Als),
    Knn(assent_recommendation::knn::ItemKnn),
    Ease(assent_recommendation::ease::Ease),
}

impl Fitted {
    fn scorer(&self) -> &dyn Scorer {
        match self {
            Fitted::Als(m) => m,
            Fitted::Knn(m) => m,
            Fitted::Ease(m) => m,
        }
    }
}

fn fit(family: &str, p: &Value, train: &Csr) -> (Fitted, f64) {
    let start = Instant::now();
    let model = match family {
        "als" => Fitted::Als(als_params(p, SEED).check().unwrap().fit(train).unwrap()),
        "knn" => Fitted::Knn(
            ItemKnnParams {
                neighbours: p["neighbours"].as_u64().unwrap() as usize,
                weighting: match p["weighting"].as_str().unwrap() {
                    "bm25" => Weighting::Bm25 {
                        k1: p["k1"].as_f64().unwrap() as f32,
                        b: p["b"].as_f64().unwrap() as f32,
                    },
                    "cosine" => Weighting::Cosine,
                    _ => Weighting::TfIdf,
                },
                shrink: 0.0,
            }
            .check()
            .unwrap()
            .fit(train),
        ),
        _ => Fitted::Ease(
            EaseParams {
                lambda: p["lambda"].as_f64().unwrap(),
                ..Default::default()
            }
            .check()
            .unwrap()
            .fit(train)
            .unwrap(),
        ),
    };
    (model, start.elapsed().as_secs_f64())
}

fn line(name: &str, r: &Report, seconds: Option<f64>) {
    let t = seconds
        .map(|s| format!("{s:>8.2} s"))
        .unwrap_or_else(|| "       —  ".into());
    println!(
        "  {name:<34} ndcg {:.4}  prec {:.4}  recall {:.4}  map {:.4}  coverage {:.3}  fit {t}",
        r.ndcg, r.precision, r.recall, r.map, r.coverage
    );
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var("SHARED_DATA")
        .unwrap_or_else(|_| root.join("shared/data").to_string_lossy().into_owned());
    if !std::path::Path::new(&format!("{dir}/goodbooks-10k/ratings.csv")).exists() {
        println!("goodbooks-10k not found under {dir} (set SHARED_DATA): nothing to compare");
        return;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/venv/bin/python")
            .to_string_lossy()
            .into_owned()
    });
    let quick = std::env::var("RECS_QUICK").is_ok();
    let names = std::env::var("RECS_DATASETS").unwrap_or_else(|_| "ratings,to_read".into());
    let (items, by_goodreads) = books(&dir);
    let tags = book_tags(&dir, &by_goodreads, items.len());
    println!(
        "machine: {} threads (rayon); goodbooks-10k from {dir}; seed {SEED}; NDCG@{K}, full catalogue, training items left out",
        rayon::current_num_threads()
    );
    for name in names.split(',') {
        let name: &'static str = if name == "ratings" {
            "ratings"
        } else {
            "to_read"
        };
        let data = dataset(&dir, name, &items);
        let (users, n) = (data.users, data.items.len());
        let s = split::random(&data.pairs, 0.2, SEED).unwrap();
        let v = split::random(&s.train, 0.2, SEED + 1).unwrap();
        // 0/1 as the script reads them: the 2,209 repeated (book, user) pairs of the
        // ratings count once, not twice.
        let binary = |m: Csr| m.map(|_, _, _| 1.0);
        let (train, test) = s.matrices(users, n).unwrap();
        let (vtrain, vtest) = v.matrices(users, n).unwrap();
        let (train, vtrain) = (binary(train), binary(vtrain));
        println!(
            "\n{}: {} interactions ({} distinct pairs), {users} users, {n} items; train {} / test {}",
            data.name,
            data.pairs.len(),
            s.train.len() + s.test.len(),
            s.train.len(),
            s.test.len()
        );
        let work =
            std::env::temp_dir().join(format!("assent-recs-compare-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        write_pairs(&work.join("train.bin"), &s.train);
        write_pairs(&work.join("test.bin"), &s.test);
        write_pairs(&work.join("val_train.bin"), &v.train);
        write_pairs(&work.join("val_test.bin"), &v.test);
        let g = grid(quick);
        std::fs::write(
            work.join("meta.json"),
            json!({"users": users, "items": n, "seed": SEED, "seeds": SEEDS, "grid": g})
                .to_string(),
        )
        .unwrap();

        let mut ours: HashMap<&str, (Report, f64, Value)> = HashMap::new();
        let mut best_models: HashMap<&str, Fitted> = HashMap::new();
        let mut val_models: HashMap<&str, (f64, Fitted)> = HashMap::new();
        for family in ["als", "knn", "ease"] {
            let mut best: Option<(f64, Value)> = None;
            for p in g[family].as_array().unwrap() {
                let (m, _) = fit(family, p, &vtrain);
                let r = evaluate(m.scorer(), &vtrain, &vtest, K, Protocol::default(), None);
                eprintln!("ours {family} {p} validation ndcg {:.4}", r.ndcg);
                if best.as_ref().is_none_or(|b| r.ndcg > b.0) {
                    best = Some((r.ndcg, p.clone()));
                    val_models.insert(family, (r.ndcg, m));
                }
            }
            let p = best.unwrap().1;
            let (m, seconds) = fit(family, &p, &train);
            let mut lists = Vec::new();
            let r = evaluate(
                m.scorer(),
                &train,
                &test,
                K,
                Protocol::default(),
                Some(&mut lists),
            );
            write_lists(&work.join(format!("ours_{family}.bin")), &lists);
            ours.insert(family, (r, seconds, p));
            best_models.insert(family, m);
        }
        // EASE as a collector stores it for a large catalogue: each item's 200 strongest
        // weights (the best λ above).
        let start = Instant::now();
        let pruned = EaseParams {
            lambda: ours["ease"].2["lambda"].as_f64().unwrap(),
            keep: 200,
            ..Default::default()
        }
        .check()
        .unwrap()
        .fit(&train)
        .unwrap();
        let pruned_seconds = start.elapsed().as_secs_f64();
        let rpr = evaluate(&pruned, &train, &test, K, Protocol::default(), None);
        let pruned_weights = pruned.stored_weights();
        drop(pruned);
        let pop = Popularity::fit(&train);
        let mut lists = Vec::new();
        let rp = evaluate(
            &pop,
            &train,
            &test,
            K,
            Protocol::default(),
            Some(&mut lists),
        );
        write_lists(&work.join("ours_popularity.bin"), &lists);
        let start = Instant::now();
        let content = ContentParams::default()
            .check()
            .unwrap()
            .fit(&tags)
            .unwrap();
        let content_seconds = start.elapsed().as_secs_f64();
        let mut lists = Vec::new();
        let rc = evaluate(
            &content,
            &train,
            &test,
            K,
            Protocol::default(),
            Some(&mut lists),
        );
        write_lists(&work.join("ours_content.bin"), &lists);
        // The hybrid: the two best collaborative models of the validation split, the
        // second's weight (and a content share) chosen on the validation split too.
        let mut ranked = ["als", "knn", "ease"];
        ranked.sort_by(|a, b| val_models[b].0.total_cmp(&val_models[a].0));
        let (first, second) = (ranked[0], ranked[1]);
        let vcontent = ContentParams::default()
            .check()
            .unwrap()
            .fit(&tags)
            .unwrap();
        let mut mix = (0.0f32, 0.0f32, f64::MIN);
        for w in [0.0f32, 0.25, 0.5, 1.0] {
            for c in [0.0f32, 0.05] {
                let blend = Blend::new(vec![
                    (val_models[first].1.scorer(), 1.0),
                    (val_models[second].1.scorer(), w),
                    (&vcontent, c),
                ]);
                let r = evaluate(&blend, &vtrain, &vtest, K, Protocol::default(), None);
                eprintln!(
                    "ours hybrid {first} + {w} {second} + {c} content: validation ndcg {:.4}",
                    r.ndcg
                );
                if r.ndcg > mix.2 {
                    mix = (w, c, r.ndcg);
                }
            }
        }
        let blend = Blend::new(vec![
            (best_models[first].scorer(), 1.0),
            (best_models[second].scorer(), mix.0),
            (&content, mix.1),
        ]);
        let hybrid_name = format!(
            "ours hybrid ({first} + {} {second} + {} content)",
            mix.0, mix.1
        );
        let mut lists = Vec::new();
        let rh = evaluate(
            &blend,
            &train,
            &test,
            K,
            Protocol::default(),
            Some(&mut lists),
        );
        write_lists(&work.join("ours_hybrid.bin"), &lists);
        drop(val_models);

        // The reference side, then every list judged by its one metric function.
        let out = Command::new(&python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/compare_implicit.py"))
            .arg(&work)
            .output()
            .expect("run the comparison script");
        if !out.status.success() {
            std::io::stderr().write_all(&out.stderr).unwrap();
            panic!("compare_implicit.py failed");
        }
        let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let reference = |family: &str| {
            results
                .iter()
                .find(|r| r["side"] == "reference" && r["family"] == family && r["stage"] == "test")
        };
        let judged = |family: &str| {
            results
                .iter()
                .find(|r| r["side"] == "ours" && r["family"] == family)
                .map(|r| r["ndcg"].as_f64().unwrap())
        };
        println!("  (each model: best of its grid on the validation split, refitted on train)");
        for family in ["als", "knn", "ease"] {
            let (r, seconds, p) = &ours[family];
            line(&format!("ours {family}"), r, Some(*seconds));
            println!(
                "      params {p}; NDCG@10 as the script judges our lists: {:.4}",
                judged(family).unwrap_or(f64::NAN)
            );
        }
        line(
            "ours ease, 200 weights kept per item",
            &rpr,
            Some(pruned_seconds),
        );
        println!(
            "      {pruned_weights} weights stored ({:.1} % of the whole)",
            100.0 * pruned_weights as f64 / (train.cols() as f64 * train.cols() as f64)
        );
        line("ours content (book tags)", &rc, Some(content_seconds));
        line(&hybrid_name, &rh, None);
        println!(
            "      NDCG@10 as the script judges the hybrid's lists: {:.4}",
            judged("hybrid").unwrap_or(f64::NAN)
        );
        line("ours popularity", &rp, None);
        for family in ["als", "bpr", "knn", "ease"] {
            if let Some(r) = reference(family) {
                let rep = Report {
                    k: K,
                    users: r["users"].as_u64().unwrap() as usize,
                    precision: r["precision"].as_f64().unwrap(),
                    recall: r["recall"].as_f64().unwrap(),
                    map: r["map"].as_f64().unwrap(),
                    ndcg: r["ndcg"].as_f64().unwrap(),
                    coverage: r["coverage"].as_f64().unwrap(),
                };
                let label = if family == "ease" {
                    "numpy ease".to_owned()
                } else {
                    format!("implicit {family}")
                };
                line(&label, &rep, r["fit_seconds"].as_f64());
                println!("      params {}", r["params"]);
            }
        }
        let best_ref = ["als", "bpr", "knn", "ease"]
            .iter()
            .filter_map(|f| reference(f).map(|r| r["ndcg"].as_f64().unwrap()))
            .fold(0f64, f64::max);
        let best_ours = ours.values().map(|o| o.0.ndcg).fold(rh.ndcg, f64::max);
        println!(
            "  best ours {best_ours:.4} vs best reference {best_ref:.4}: ratio {:.3}",
            best_ours / best_ref
        );
        // ALS from other random starts, both sides, the same best parameters.
        let (als, _, best) = &ours[&"als"];
        let mut mine = vec![als.ndcg];
        for seed in SEEDS {
            let m = als_params(best, seed).check().unwrap().fit(&train).unwrap();
            mine.push(evaluate(&m, &train, &test, K, Protocol::default(), None).ndcg);
        }
        let mut theirs: Vec<f64> = reference("als")
            .map(|r| vec![r["ndcg"].as_f64().unwrap()])
            .unwrap_or_default();
        theirs.extend(
            results
                .iter()
                .filter(|r| {
                    r["side"] == "reference" && r["family"] == "als" && r["stage"] == "seed"
                })
                .map(|r| r["ndcg"].as_f64().unwrap()),
        );
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let spread = |v: &[f64]| {
            let mean = mean(v);
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            format!("mean {mean:.4}, {lo:.4}-{hi:.4} over {} starts", v.len())
        };
        println!(
            "  ALS NDCG@10 by random start: ours {}; implicit {}",
            spread(&mine),
            spread(&theirs)
        );
        if !theirs.is_empty() {
            println!(
                "  als over those starts: mean NDCG ours/implicit {:.3}",
                mean(&mine) / mean(&theirs)
            );
        }
        for family in ["als", "knn"] {
            if let Some(r) = reference(family) {
                let (o, s, _) = &ours[family];
                println!(
                    "  {family}: NDCG ours/implicit {:.3}, fit time implicit/ours {:.2}×",
                    o.ndcg / r["ndcg"].as_f64().unwrap(),
                    r["fit_seconds"].as_f64().unwrap() / s
                );
            }
        }
        if name == "ratings" {
            println!("  note: this release caps each book at 100 ratings, so popularity is nearly flat in it");
        }
        // Cold start: 10 % of users never trained on; half their items shown, half to find.
        let c = split::cold_start(&data.pairs, 0.1, 0.5, SEED).unwrap();
        let ctrain = binary(split::to_matrix(&c.train, users, n).unwrap());
        let shown = binary(split::to_matrix(&c.shown, users, n).unwrap());
        let ctest = split::to_matrix(&c.test, users, n).unwrap();
        let unseen = Protocol {
            exclude_history: true,
            unseen_users: true,
        };
        println!(
            "  cold start ({} held-out users, their shown history scored without retraining):",
            c.test
                .iter()
                .map(|i| i.user)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        for family in ["als", "knn", "ease"] {
            let (m, _) = fit(family, &ours[family].2, &ctrain);
            let r = evaluate(m.scorer(), &shown, &ctest, K, unseen, None);
            line(&format!("ours {family} (fold-in / direct)"), &r, None);
        }
        let r = evaluate(&content, &shown, &ctest, K, unseen, None);
        line("ours content", &r, None);
        let r = evaluate(&Popularity::fit(&ctrain), &shown, &ctest, K, unseen, None);
        line("ours popularity", &r, None);
        let _ = std::fs::remove_dir_all(&work);
    }
}
