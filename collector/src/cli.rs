//! The command line: `serve` (the default), `migrate`, `keys`, `sources`, `audit`,
//! `subject`, `export`, `segments`, `recommend`, `worker`.
use std::{io::Write, path::PathBuf, sync::Arc};

use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    audit::export::{self, Format},
    audit::{self, Verifier},
    config::Config,
    error::{Error, Result},
    keys::{self, Role},
    pseudonym::Pseudonymizer,
    startup::Application,
    state::{AppState, SystemClock},
    storage,
};

#[derive(Debug, Parser)]
#[command(
    name = "assent-collector",
    version,
    about = "Assent collector: consent-enforcing event and consent ingest"
)]
pub struct Cli {
    /// TOML configuration file (ASSENT_* environment variables override it).
    #[arg(long, global = true, env = "ASSENT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create, list and revoke write keys and compliance (admin) tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Consent settings of a source.
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Export or verify the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Data subject requests.
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// Write stored data out for a warehouse.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Segmentation: train, list, promote and roll back models; backfill audiences.
    #[command(subcommand)]
    Segments(SegmentsCommand),
    /// Recommendations: train, list, promote and roll back recommenders; evaluate models
    /// offline on an interaction file.
    #[command(subcommand)]
    Recommend(RecommendCommand),
    /// Content, flags and experiments: set, list, show the history of and roll back
    /// definitions; an experiment's results as a table.
    #[command(subcommand)]
    Experiments(ExperimentsCommand),
    /// A segmentation worker: consumes the feed from NATS JetStream with the other
    /// workers (needs ASSENT_NATS_URL; profiles in the shared database) until stopped.
    Worker,
}

#[derive(Debug, Subcommand)]
pub enum SegmentsCommand {
    /// Train a new model version of a segmentation on every stored profile; it becomes
    /// active if its silhouette is not worse than the active one's.
    Train {
        /// The segmentation's name.
        name: String,
        /// Numeric features, comma-separated (`purchases_30d,views_30d,engagement`).
        #[arg(long, value_delimiter = ',', required = true)]
        features: Vec<String>,
        /// Clusters: a number (`8`) or a range chosen by silhouette (`2..8`).
        #[arg(long, default_value = "2..8")]
        k: String,
        /// k-means runs per k.
        #[arg(long, default_value_t = 3)]
        n_init: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Outlier fences: `robust-z:3.5` or `iqr:1.5`.
        #[arg(long, default_value = "iqr:3")]
        outliers: String,
        /// How clusters are found.
        #[arg(long, value_enum, default_value = "kmeans")]
        method: MethodArg,
    },
    /// Every segmentation's model versions, newest first (JSON lines).
    Models,
    /// Make a version the active one.
    Promote { name: String, version: i64 },
    /// Bring back the version active before the active one.
    Rollback { name: String },
    /// Decide every audience's members again from stored history.
    Backfill,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentsCommand {
    /// An experiment's results: visitors, the sample-ratio check, each metric per
    /// variant against the control, adjusted p-values and a verdict.
    Results {
        name: String,
        /// The JSON the HTTP API answers instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Set a definition from a JSON file (checked as the HTTP API checks it).
    Set {
        /// `block-types`, `slots`, `flags` or `experiments`.
        kind: String,
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// The definitions of a kind in force (JSON lines).
    List { kind: String },
    /// Every version of a definition, oldest first (JSON lines).
    History { kind: String, name: String },
    /// Put an old version back in force, as a new version.
    Rollback {
        kind: String,
        name: String,
        version: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecommendCommand {
    /// Train a new version of a recommender on every profile at a source; it becomes
    /// active if its held-out NDCG@10 is not worse than the active version's.
    Train {
        /// The recommender's name (`default` is what requests use unless they name one).
        name: String,
        /// The source (id or name) whose interactions it learns.
        #[arg(long)]
        source: String,
        /// The model, `KIND:NAME=VALUE;…`: `item_knn:neighbours=100;weighting=bm25`,
        /// `als:factors=64;regularization=1;alpha=19`, `ease:lambda=500`, `popularity`.
        #[arg(long, default_value = "item_knn")]
        model: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Every recommender's versions, newest first (JSON lines).
    Models,
    /// Make a version the active one.
    Promote {
        name: String,
        version: i64,
        #[arg(long)]
        source: String,
    },
    /// Bring back the version active before the active one.
    Rollback {
        name: String,
        #[arg(long)]
        source: String,
    },
    /// Split a plain interaction file (`user item [value [timestamp]]` per line, comma,
    /// tab or space separated) into train and test, search each model's grid by k-fold
    /// cross-validation on the training part, and print the best of each on the test
    /// part beside popularity (Precision, Recall, MAP, NDCG at K, coverage).
    Evaluate {
        /// The interaction file.
        #[arg(long)]
        input: PathBuf,
        /// How the test part is held out.
        #[arg(long, value_enum, default_value = "random")]
        split: SplitArg,
        /// The test share (random and per-user splits).
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// The time from which interactions are tested (`--split time`), in the file's unit.
        #[arg(long)]
        cutoff: Option<i64>,
        /// Cross-validation folds for the grid search.
        #[arg(long, default_value_t = 3)]
        folds: usize,
        /// The K of the metrics.
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A grid to search, `KIND:NAME=V1,V2;NAME=V…` (repeatable), e.g.
        /// `als:factors=64,128;regularization=0.1,1;alpha=4,19`,
        /// `item_knn:weighting=bm25,cosine;neighbours=50,100`, `ease:lambda=250,500`.
        /// Without one, default grids of item_knn, als and ease.
        #[arg(long)]
        grid: Vec<String>,
    },
}

/// How `recommend evaluate` holds out its test part.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitArg {
    /// A random share of the distinct (user, item) pairs.
    Random,
    /// A random share of each user's items.
    PerUser,
    /// Each user's latest item.
    LastOut,
    /// Everything at or after `--cutoff`.
    Time,
}

/// A segmentation model's method on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    Kmeans,
    GmmFull,
    GmmDiag,
    Ward,
}

/// The training request the CLI's arguments make (the same JSON the API takes).
fn training_of(
    features: &[String],
    k: &str,
    n_init: usize,
    seed: u64,
    outliers: &str,
    method: MethodArg,
) -> Result<crate::segments::models::Training> {
    let bad = |what: &str| Error::BadRequest(what.into());
    let clusters = match k.split_once("..") {
        Some((from, to)) => {
            let n = |v: &str| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| bad("--k: N or FROM..TO"))
            };
            serde_json::json!({"best": {"from": n(from)?, "to": n(to)?}})
        }
        None => {
            serde_json::json!({"fixed": k.trim().parse::<usize>().map_err(|_| bad("--k: N or FROM..TO"))?})
        }
    };
    let fences = match outliers.split_once(':') {
        Some(("robust-z", v)) => {
            serde_json::json!({"robust_z": {"threshold": v.parse::<f64>().map_err(|_| bad("--outliers: robust-z:NUMBER"))?}})
        }
        Some(("iqr", v)) => {
            serde_json::json!({"iqr": {"k": v.parse::<f64>().map_err(|_| bad("--outliers: iqr:NUMBER"))?}})
        }
        _ => return Err(bad("--outliers: robust-z:NUMBER or iqr:NUMBER")),
    };
    let method = match method {
        MethodArg::Kmeans => serde_json::json!("k_means"),
        MethodArg::GmmFull => serde_json::json!({"gmm": "full"}),
        MethodArg::GmmDiag => serde_json::json!({"gmm": "diag"}),
        MethodArg::Ward => serde_json::json!("ward"),
    };
    crate::segments::models::Training::parse(&serde_json::json!({
        "features": features, "clusters": clusters, "n_init": n_init, "seed": seed,
        "outliers": fences, "method": method,
    }))
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// The events received in a time window, as the warehouse sink writes them
    /// (OUT/events/source=…/date=YYYY-MM-DD/part-….parquet): pseudonyms only.
    Events {
        /// First time included: an ISO 8601 date-time or a date (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// First time excluded, the same way.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value = "parquet")]
        format: ExportFormat,
        /// The output folder (made when missing).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Parquet,
    Ndjson,
}

/// Unix ms of `--since` / `--until`: a date-time, or a date at 00:00 UTC.
fn export_bound(name: &str, value: Option<&str>, default: i64) -> Result<i64> {
    let Some(text) = value else {
        return Ok(default);
    };
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    assent_protocol::Timestamp::parse(&full)
        .map(|t| t.unix_millis())
        .map_err(|_| {
            Error::BadRequest(format!(
                "--{name} {text:?}: expected a date (2026-12-01) or an ISO 8601 date-time"
            ))
        })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// A source's public key (pages, apps): ingest only.
    Write,
    /// A source's secret key for its back end: ingest, and reading its own consent.
    Server,
    /// A compliance token: audit, subject requests, any source's consent.
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once.
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Source the write key sends for (created when new).
        #[arg(long)]
        source: Option<String>,
        #[arg(long, default_value = "")]
        label: String,
        /// Browser origins allowed to send for the source (CORS), comma-separated, such as
        /// `https://shop.example,https://www.shop.example`; replaces the source's list.
        #[arg(long)]
        origins: Option<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by its id.
    Revoke { key_id: String },
}

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Change whose consent counts for a source, and whether Segment stamps do.
    Set {
        /// The source's name (as given to `keys create --source`).
        name: String,
        /// Share consent records with the other sources of this group (sites that show
        /// one consent notice of one controller).
        #[arg(long, conflicts_with = "no_consent_group")]
        consent_group: Option<String>,
        /// Take the source out of its group: only its own records count.
        #[arg(long)]
        no_consent_group: bool,
        /// Whether `context.consent.categoryPreferences` on events counts as consent
        /// where no consent record is in force (off by default).
        #[arg(long)]
        trust_consent_stamps: Option<bool>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the audit trail as JSONL or CSV.
    Export {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Output file (standard output when absent).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check an exported file, a receipt's proof or a consistency proof; names the first
    /// entry altered, removed or reordered, or the proof that fails. With `--public-key`
    /// it needs nothing but the file and the key: the export's anchor (signed checkpoint,
    /// signed range, inclusion proofs) is checked too.
    Verify {
        file: PathBuf,
        /// The log's verifier key (`audit key`, or `/.well-known/assent-audit-keys`), or a
        /// file holding it.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print the verifier key that checks this collector's signed checkpoints.
    Key,
}

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// Print the pseudonym under which a raw id is stored.
    Lookup { raw_id: String },
}

fn load(cli: &Cli) -> Result<Config> {
    Config::load(cli.config.as_deref(), std::env::vars())
}

async fn open(cli: &Cli) -> Result<AppState> {
    AppState::open(load(cli)?, Arc::new(SystemClock)).await
}

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        None | Some(Command::Serve) => {
            let app = Application::build(load(&cli)?).await?;
            app.run_until_stopped()
                .await
                .map_err(|e| Error::Internal(format!("server: {e}")))?;
        }
        Some(Command::Migrate) => {
            let config = load(&cli)?;
            let db = storage::Db::connect(config.database_url.expose()).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Some(Command::Keys(cmd)) => {
            let state = open(&cli).await?;
            match cmd {
                KeysCommand::Create {
                    role,
                    source,
                    label,
                    origins,
                } => {
                    let role = match role {
                        RoleArg::Write => Role::Write,
                        RoleArg::Server => Role::Server,
                        RoleArg::Admin => Role::Admin,
                    };
                    let key = keys::create(
                        &state.keys,
                        role,
                        source.as_deref(),
                        origins.as_deref(),
                        label,
                        "cli",
                    )
                    .await?;
                    println!("{}\t{}", key.id, key.raw);
                    eprintln!("Keep the key: only its hash is stored.");
                }
                KeysCommand::List => {
                    for k in storage::keys::list_keys(&state.db).await? {
                        println!("{}", serde_json::to_string(&k).expect("serializes"));
                    }
                }
                KeysCommand::Revoke { key_id } => {
                    keys::revoke(&state.keys, key_id, "cli").await?;
                    println!("revoked {key_id}");
                }
            }
        }
        Some(Command::Sources(SourcesCommand::Set {
            name,
            consent_group,
            no_consent_group,
            trust_consent_stamps,
        })) => {
            let state = open(&cli).await?;
            let group = match (consent_group, no_consent_group) {
                (Some(g), _) => Some(Some(g.clone())),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let settings = crate::keys::sources::SourceSettings {
                consent_group: group,
                trust_consent_stamps: *trust_consent_stamps,
            };
            crate::keys::sources::set(&state.keys, name, settings, "cli").await?;
            println!("source {name} updated");
        }
        Some(Command::Audit(AuditCommand::Export {
            from,
            to,
            format,
            output,
        })) => {
            let state = open(&cli).await?;
            let window = crate::audit::export::Window {
                from: from.clone(),
                to: to.clone(),
                format: None,
            };
            let (from_ms, to_ms) = window.bounds()?;
            let format = Format::parse(Some(format))?;
            let data = serde_json::json!({"from": from, "to": to});
            let cut = export::begin(&state.trail, "cli".into(), data, from_ms, to_ms).await?;
            let mut out: Box<dyn Write> = match output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let io = |e: std::io::Error| Error::Internal(format!("writing the export: {e}"));
            let mut chunks = std::pin::pin!(export::rendered(state.db.clone(), cut, format));
            while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
                out.write_all(&chunk?).map_err(io)?;
            }
            out.flush().map_err(io)?;
        }
        Some(Command::Audit(AuditCommand::Verify {
            file,
            public_key: Some(key),
        })) => {
            let verdict = verify_anchored(file, key)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&verdict).expect("serializes")
            );
            return Ok(if verdict.ok { 0 } else { 1 });
        }
        Some(Command::Audit(AuditCommand::Key)) => {
            let state = open(&cli).await?;
            println!("{}", state.trail.signer().vkey());
        }
        Some(Command::Audit(AuditCommand::Verify {
            file,
            public_key: None,
        })) => {
            let config = load(&cli)?;
            let keys = checkpoint_keys(&config).await;
            let report = verify_file(file, keys.as_ref())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("serializes")
            );
            if keys.is_none() {
                eprintln!("note: the server key is unknown here (no ASSENT_PSEUDONYM_KEY, no database): checkpoint signatures were not checked");
            }
            return Ok(if report.ok { 0 } else { 1 });
        }
        Some(Command::Export(ExportCommand::Events {
            since,
            until,
            format,
            out,
        })) => {
            use crate::feed::warehouse;
            let since_ms = export_bound("since", since.as_deref(), i64::MIN)?;
            let until_ms = export_bound("until", until.as_deref(), i64::MAX)?;
            if since_ms >= until_ms {
                return Err(Error::BadRequest("--since must be before --until".into()));
            }
            let format = match format {
                ExportFormat::Parquet => warehouse::Format::Parquet,
                ExportFormat::Ndjson => warehouse::Format::Ndjson,
            };
            let state = open(&cli).await?;
            let total = warehouse::count_events(&state.db, since_ms, until_ms).await?;
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} events ({per_sec}, {eta} left)",
                )
                .expect("a valid template"),
            );
            let done = warehouse::export_events(&state.db, out, since_ms, until_ms, format, |n| {
                bar.set_position(n)
            })
            .await?;
            bar.finish_and_clear();
            state.trail.record_alone(audit::NewEntry {
                kind: audit::Kind::EventsExport,
                actor: "cli".into(),
                subject: None,
                data: serde_json::json!({"since": since, "until": until, "events": done.events, "files": done.files}),
            })
            .await?;
            println!(
                "{} events in {} files under {}",
                done.events,
                done.files,
                out.display()
            );
        }
        Some(Command::Worker) => {
            let state = open(&cli).await?;
            let settings =
                crate::feed::nats::Settings::from_config(&state.config).ok_or_else(|| {
                    Error::Config("a worker needs ASSENT_NATS_URL (the feed's stream)".into())
                })?;
            let work = crate::segments::worker::run_for_good(
                state.segments.clone(),
                state.keys.sources.clone(),
                state.consent_cache.clone(),
                state.clock.clone(),
                settings,
            );
            tokio::select! {
                () = work => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Some(Command::Segments(cmd)) => {
            use crate::segments::models::Progress;
            let state = open(&cli).await?;
            let bar = |template: &str| {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(template).expect("a valid template"),
                );
                bar
            };
            match cmd {
                SegmentsCommand::Train {
                    name,
                    features,
                    k,
                    n_init,
                    seed,
                    outliers,
                    method,
                } => {
                    let training = training_of(features, k, *n_init, *seed, outliers, *method)?;
                    let bar = bar("{msg} {bar:40} {pos}/{len} profiles ({per_sec}, {eta} left)");
                    bar.set_message("reading");
                    let version = state
                        .segments
                        .train(name, &training, "cli".into(), &|p| match p {
                            Progress::Profiles(n) => bar.set_length(n),
                            Progress::Read(n) => bar.set_position(n),
                            Progress::Fitting => {
                                bar.set_message("fitting");
                                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                            }
                        })
                        .await?;
                    bar.finish_and_clear();
                    println!("{}", serde_json::to_string(&version).expect("serializes"));
                }
                SegmentsCommand::Models => {
                    for versions in state.segments.models().await?.into_values() {
                        for v in versions {
                            println!("{}", serde_json::to_string(&v).expect("serializes"));
                        }
                    }
                }
                SegmentsCommand::Promote { name, version } => {
                    let v = state.segments.promote(name, *version, "cli".into()).await?;
                    println!("{}", serde_json::to_string(&v).expect("serializes"));
                }
                SegmentsCommand::Rollback { name } => {
                    let v = state.segments.rollback(name, "cli".into()).await?;
                    println!("{}", serde_json::to_string(&v).expect("serializes"));
                }
                SegmentsCommand::Backfill => {
                    let bar = bar("{bar:40} {pos}/{len} profiles ({per_sec}, {eta} left)");
                    bar.set_length(state.segments.profile_count().await?);
                    let done = state.segments.backfill(&|n| bar.set_position(n)).await?;
                    bar.finish_and_clear();
                    println!("{}", serde_json::to_string(&done).expect("serializes"));
                }
            }
        }
        Some(Command::Recommend(RecommendCommand::Train {
            name,
            source,
            model,
            seed,
        })) => {
            use crate::recommend::{Progress, Training};
            let specs = assent_recommendation::model::parse_grid(model)
                .map_err(|e| Error::BadRequest(format!("--model: {e}")))?;
            let [spec] = specs.as_slice() else {
                return Err(Error::BadRequest(
                    "--model: one model (give each parameter one value)".into(),
                ));
            };
            let state = open(&cli).await?;
            let source = named_source(&state, source).await?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            let training = Training {
                model: spec.clone(),
                seed: *seed,
                test_fraction: 0.2,
            };
            let version = state
                .recommendations
                .train(&source, name, training, "cli".into(), &|p| match p {
                    Progress::Read(n) => bar.set_message(format!("{n} profiles read")),
                    Progress::Fitting => bar.set_message("fitting and judging on held-out pairs"),
                })
                .await?;
            bar.finish_and_clear();
            println!("{}", serde_json::to_string(&version).expect("serializes"));
        }
        Some(Command::Experiments(command)) => {
            let state = open(&cli).await?;
            let x = &state.experiments;
            let line = |v: &crate::experiments::Version| {
                println!("{}", serde_json::to_string(v).expect("serializes"))
            };
            match command {
                ExperimentsCommand::Results { name, json } => {
                    let r = x.results(name).await?;
                    if *json {
                        println!("{r}");
                    } else {
                        print!("{}", crate::experiments::table(&r));
                    }
                }
                ExperimentsCommand::Set { kind, name, file } => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
                    let body: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|e| Error::BadRequest(format!("{}: {e}", file.display())))?;
                    let kind = crate::experiments::Kind::from_plural(kind)?;
                    line(&x.put(kind, name, &body, "cli".into()).await?);
                    crate::switches::apply(x, &state.segments, kind, name, "cli".into()).await?;
                }
                ExperimentsCommand::List { kind } => {
                    for v in x.list(crate::experiments::Kind::from_plural(kind)?).await? {
                        line(&v);
                    }
                }
                ExperimentsCommand::History { kind, name } => {
                    for v in x
                        .history(crate::experiments::Kind::from_plural(kind)?, name)
                        .await?
                    {
                        line(&v);
                    }
                }
                ExperimentsCommand::Rollback {
                    kind,
                    name,
                    version,
                } => {
                    let kind = crate::experiments::Kind::from_plural(kind)?;
                    line(&x.rollback(kind, name, *version, "cli".into()).await?);
                    crate::switches::apply(x, &state.segments, kind, name, "cli".into()).await?;
                }
            }
        }
        Some(Command::Recommend(RecommendCommand::Models)) => {
            let state = open(&cli).await?;
            for v in state.recommendations.models().await? {
                println!("{}", serde_json::to_string(&v).expect("serializes"));
            }
        }
        Some(Command::Recommend(RecommendCommand::Promote {
            name,
            version,
            source,
        })) => {
            let state = open(&cli).await?;
            let source = named_source(&state, source).await?;
            let v = state
                .recommendations
                .promote(&source, name, *version, "cli".into())
                .await?;
            println!("{}", serde_json::to_string(&v).expect("serializes"));
        }
        Some(Command::Recommend(RecommendCommand::Rollback { name, source })) => {
            let state = open(&cli).await?;
            let source = named_source(&state, source).await?;
            let v = state
                .recommendations
                .rollback(&source, name, "cli".into())
                .await?;
            println!("{}", serde_json::to_string(&v).expect("serializes"));
        }
        Some(Command::Recommend(RecommendCommand::Evaluate {
            input,
            split,
            test_fraction,
            cutoff,
            folds,
            k,
            seed,
            grid,
        })) => {
            use crate::recommend::offline::{self, SplitKind};
            let text = std::fs::read_to_string(input)
                .map_err(|e| Error::Config(format!("{}: {e}", input.display())))?;
            let split = match (split, cutoff) {
                (SplitArg::Random, _) => SplitKind::Random,
                (SplitArg::PerUser, _) => SplitKind::PerUser,
                (SplitArg::LastOut, _) => SplitKind::LeaveLastOut,
                (SplitArg::Time, Some(c)) => SplitKind::ByTime(*c),
                (SplitArg::Time, None) => {
                    return Err(Error::BadRequest("--split time needs --cutoff".into()))
                }
            };
            let options = offline::Options {
                split,
                test_fraction: *test_fraction,
                folds: *folds,
                k: *k,
                seed: *seed,
                grids: grid.clone(),
            };
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} fits ({eta} left)")
                    .expect("a valid template"),
            );
            let table = offline::evaluate(&text, &options, &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            print!("{table}");
        }
        Some(Command::Subject(SubjectCommand::Lookup { raw_id })) => {
            let state = open(&cli).await?;
            println!("{}", state.pseudonymizer.pseudonym(raw_id));
        }
    }
    Ok(0)
}

/// The source named (by id or name) on the command line.
async fn named_source(state: &AppState, source: &str) -> Result<crate::ids::SourceId> {
    state
        .keys
        .find_source(source)
        .await?
        .ok_or_else(|| Error::BadRequest(format!("no source {source}")))
}

/// The key that signs checkpoints: from the configuration, else the one generated in the
/// database, when the database is reachable (read only: nothing is created).
async fn checkpoint_keys(config: &Config) -> Option<Pseudonymizer> {
    if let Some(key) = &config.pseudonym_key {
        return Some(Pseudonymizer::new(
            config.pseudonym_key_id.clone(),
            key.clone(),
        ));
    }
    let url = config.database_url.expose();
    // Read only: verifying must not create a database file.
    let url = if url.starts_with("sqlite:") && !url.contains('?') {
        format!("{url}?mode=ro")
    } else {
        url.to_owned()
    };
    let db = storage::Db::connect(&url).await.ok()?;
    let key = storage::secrets::stored_pseudonym_key(&db, &config.pseudonym_key_id)
        .await
        .ok()??;
    Some(Pseudonymizer::new(config.pseudonym_key_id.clone(), key))
}

/// Verifies an export or a proof file with the log's public key alone (`key`: the
/// verifier key, or a file that holds it).
pub fn verify_anchored(path: &std::path::Path, key: &str) -> Result<audit::anchor::Verdict> {
    use audit::anchor;
    use std::io::BufRead;
    let key = match std::fs::read_to_string(key) {
        Ok(text) => text.trim().to_owned(),
        Err(_) => key.trim().to_owned(),
    };
    let key = audit::note::Vkey::parse(&key).map_err(|e| Error::BadRequest(e.to_string()))?;
    let io = |e: std::io::Error| Error::Config(format!("{}: {e}", path.display()));
    // A proof file is one JSON object of a proof format; anything else is an export
    // (read line by line: an export may be large).
    let mut first = String::new();
    let file = std::fs::File::open(path).map_err(io)?;
    std::io::BufReader::new(&file)
        .read_line(&mut first)
        .map_err(io)?;
    let proof = match anchor::parse_proof(&first) {
        Some(p) => Some(p),
        None if first.trim_start().starts_with('{')
            && serde_json::from_str::<serde_json::Value>(&first).is_err() =>
        {
            // Perhaps a proof file written over several lines.
            let size = file.metadata().map_err(io)?.len();
            if size < 1 << 20 {
                anchor::parse_proof(&std::fs::read_to_string(path).map_err(io)?)
            } else {
                None
            }
        }
        None => None,
    };
    Ok(match proof {
        Some(anchor::Proof::Inclusion(p)) => anchor::verify_inclusion(&key, &p),
        Some(anchor::Proof::Consistency(p)) => anchor::verify_consistency(&key, &p),
        Some(anchor::Proof::Malformed(kind)) => anchor::malformed_proof(kind),
        None => {
            let file = std::fs::File::open(path).map_err(io)?;
            anchor::verify_export_lines(key, std::io::BufReader::new(file).lines()).map_err(io)?
        }
    })
}

/// Verifies an exported file (JSONL or CSV, told apart by its first line) by its chain
/// alone, and the HMACs of old checkpoint entries when the server key is known.
pub fn verify_file(path: &std::path::Path, keys: Option<&Pseudonymizer>) -> Result<audit::Report> {
    use std::io::BufRead;
    let file =
        std::fs::File::open(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let mut verifier = Verifier::new(keys);
    let lines = std::io::BufReader::new(file).lines();
    let mut csv = false;
    let mut line_no = 0;
    for line in lines {
        let line = line.map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        line_no += 1;
        let entry = match audit::anchor::parse_line(&line, line_no, &mut csv) {
            Some(audit::anchor::Line::Entry(e)) => Some(e),
            Some(_) => continue,
            None => None,
        };
        let Some(entry) = entry else {
            return Err(Error::BadRequest(format!(
                "line {line_no} is not an audit entry"
            )));
        };
        verifier.push(&entry);
    }
    Ok(verifier.finish())
}
