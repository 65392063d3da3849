//! Startup in one place: connect, migrate, bootstrap, bind; then serve with the
//! background jobs beside.
use std::{sync::Arc, time::Duration};

use tokio::net::TcpListener;

use crate::{
    config::Config,
    error::{Error, Result},
    http, keys,
    state::{AppState, Clock, SystemClock},
    subjects,
};

/// A built collector: bound to its port, its routes built, ready to serve.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    router: axum::Router,
    limiters: http::ratelimit::Sizes,
    sdk_files: usize,
}

impl Application {
    /// Connects, migrates, bootstraps and binds (`bind` port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Application> {
        Application::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Application> {
        let bind = config.bind;
        let state = Arc::new(AppState::open(config, clock).await?);
        if let Some((write, admin)) = keys::bootstrap(&state.keys, &state.config).await? {
            state.keys.refresh_sources().await?;
            let generated = state.config.bootstrap_write_key.is_none()
                || state.config.bootstrap_admin_token.is_none();
            if generated {
                // Shown once, on the terminal that started the first run; never logged.
                println!("First start: created the `default` source.");
                if state.config.bootstrap_write_key.is_none() {
                    println!("  write key:        {}", write.raw);
                }
                if state.config.bootstrap_admin_token.is_none() {
                    println!("  compliance token: {}", admin.raw);
                }
                println!("Keep them: they are stored only as hashes and will not be shown again.");
            }
        }
        let dir = &state.config.sdk_dir;
        let sdk = http::sdk_files::SdkFiles::load(dir)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", dir.display())))?;
        let sdk_files = sdk.len();
        let (router, limiters) = Application::router(state.clone(), sdk);
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| Error::Config(format!("cannot bind {bind}: {e}")))?;
        Ok(Application {
            listener,
            state,
            router,
            limiters,
            sdk_files,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// The request limiters' sizes (for tests).
    pub fn limiters(&self) -> http::ratelimit::Sizes {
        self.limiters.clone()
    }

    /// The routes behind the rate limits, and the limiters' sizes; the client address is
    /// set by `serve`.
    pub fn router(
        state: Arc<AppState>,
        sdk: http::sdk_files::SdkFiles,
    ) -> (axum::Router, http::ratelimit::Sizes) {
        let config = state.config.clone();
        http::ratelimit::apply(http::router(state, sdk), &config)
    }

    /// Serves until Ctrl-C or SIGTERM, with the retention job running beside.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        tokio::spawn(subjects::retention::run(state.subjects.clone()));
        // Running unless workers have the feed: the real-time switch (configured, or
        // set through the API) says whether it follows it.
        if !state.config.segmentation_workers {
            tokio::spawn(crate::segments::consumer::run(
                state.segments.clone(),
                state.keys.sources.clone(),
                state.consent_cache.clone(),
                state.clock.clone(),
                Duration::from_secs(state.config.segmentation_sweep_secs.max(1)),
            ));
        }
        if state.config.segmentation_retrain_secs > 0 {
            tokio::spawn(crate::segments::models::retrain_on_schedule(
                state.segments.clone(),
                state.db.clone(),
                Duration::from_secs(state.config.segmentation_retrain_secs),
            ));
        }
        tokio::spawn(crate::feed::counting::run(
            state.db.clone(),
            state.clock.clone(),
            crate::recommend::feedback::Feedback,
        ));
        tokio::spawn(crate::feed::counting::run(
            state.db.clone(),
            state.clock.clone(),
            crate::experiments::metrics::Metrics(state.experiments.clone()),
        ));
        tokio::spawn(crate::recommend::retrain_on_schedule(
            state.recommendations.clone(),
            Duration::from_secs(state.config.recommendation_retrain_secs),
        ));
        if let Some(settings) = crate::feed::nats::Settings::from_config(&state.config) {
            tokio::spawn(crate::feed::nats::run(
                state.db.clone(),
                settings,
                state.clock.clone(),
            ));
        }
        if let Some(dir) = state.config.warehouse_dir.clone() {
            tokio::spawn(crate::feed::warehouse::run(
                state.db.clone(),
                dir,
                std::time::Duration::from_secs(state.config.warehouse_every_secs.max(1)),
                state.clock.clone(),
            ));
        }
        spawn_every(
            state.clone(),
            ORIGINS_REFRESH,
            "allowed origins refresh",
            |s| async move { s.keys.refresh_sources().await },
        );
        // A signed audit checkpoint when anything was appended since the last one.
        spawn_every(
            state.clone(),
            std::time::Duration::from_secs(state.config.audit_checkpoint_interval_secs.max(1)),
            "audit checkpoint",
            |s| async move { s.trail.checkpoint().await.map(|_| ()) },
        );
        // SQLite's WAL checkpoints (nothing on PostgreSQL).
        spawn_every(
            state.clone(),
            CHECKPOINT_EVERY,
            "WAL checkpoint",
            |s| async move { s.db.checkpoint().await },
        );
        spawn_every(
            state.clone(),
            std::time::Duration::from_secs(60),
            "record limits upkeep",
            |s| async move {
                s.ingest.forget_idle_budgets();
                Ok(())
            },
        );
        let proxies = http::proxy::TrustedProxies::new(
            state
                .config
                .proxies()
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let limits = http::serve::Limits::from_config(&state.config);
        let dir = self.state.config.sdk_dir.display();
        if self.sdk_files == 0 {
            tracing::warn!(%dir, "no banner bundle found; /sdk/ answers 404 (build it with `make ui`)");
        } else {
            tracing::info!(files = self.sdk_files, %dir, "serving the banner bundle at /sdk/");
        }
        tracing::info!(port = self.port(), backend = ?self.state.db.backend, "collector listening");
        http::serve::serve(
            self.listener,
            self.router,
            limits,
            proxies,
            shutdown_signal(),
        )
        .await;
        Ok(())
    }
}

/// How soon a source's new allowed origins (set by `keys create --origins` on any
/// replica) take effect everywhere.
pub const ORIGINS_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// How often SQLite's WAL is copied into the database, beside the writer.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs `job` every `period` (the first time one period after start) until the process
/// ends; a failure is logged and the job tried again at the next tick.
fn spawn_every<F, Fut>(
    state: Arc<AppState>,
    period: std::time::Duration,
    what: &'static str,
    job: F,
) where
    F: Fn(Arc<AppState>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = job(state.clone()).await {
                tracing::warn!(error = %e, "{what} failed; will retry");
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
