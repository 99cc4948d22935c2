//! Builds the whole server from `Settings`, so that `main` and the tests start the same
//! thing (tests on port 0).

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, Method, header},
    middleware,
    response::{IntoResponse, Redirect},
    routing::get,
};
use parley_analytics::{AnalyticsStore, ClickHouseStore, EmbeddedStore, Shipper, ShipperConfig};
use secrecy::ExposeSecret;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{Any, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    auth::{
        cache::{CredentialCache, SESSION_TTL},
        jwt::JwtKeys,
    },
    chat,
    config::Settings,
    contacts::import,
    db, downloads,
    graphql::{self, http::HttpState, ws},
    health, observability,
    realtime::{InProcessBus, RedisBus, SharedBus},
    state::AppState,
    whatsapp::{self, WhatsApp},
};

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

/// A server running in the background (tests).
pub struct RunningApp {
    pub address: SocketAddr,
    pub state: AppState,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops accepting requests, finishes the ones in flight and flushes the outbox.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.handle.await?
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = observability::metrics_handle();
        let (db, statements) = db::connect(&settings).await?;
        let bus: SharedBus = match &settings.redis_url {
            Some(url) => Arc::new(
                RedisBus::connect(url.expose_secret(), &settings.redis_channel_prefix)
                    .await
                    .context("connecting to Redis")?,
            ),
            None => Arc::new(InProcessBus::new()),
        };
        let analytics = analytics_store(&settings).await?;
        let jwt = Arc::new(JwtKeys::new(&settings.jwt, &jwt_secret(&settings)?));
        let whatsapp = Arc::new(WhatsApp::new(db.clone(), &settings.whatsapp)?);
        let state = AppState {
            db,
            bus,
            analytics,
            jwt,
            settings: Arc::new(settings.clone()),
            statements,
            credentials: Arc::new(CredentialCache::new(SESSION_TTL)),
            whatsapp,
            price_books: Default::default(),
            dispatch: Default::default(),
            campaign_progress: Default::default(),
            limits: Arc::new(crate::limits::Limits::new(&settings.limits)),
        };
        let schema = graphql::build_schema(state.clone(), &settings.graphql);
        let router = router(HttpState {
            app: state.clone(),
            schema,
            shared: Default::default(),
        })
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        );
        let listener = TcpListener::bind((settings.host, settings.port))
            .await
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
        tracing::info!(address = %self.address(), "Parley is serving GraphQL at /graphql");
        self.serve(stopped).await
    }

    /// Serves in the background (tests).
    pub fn spawn(self) -> RunningApp {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let address = self.address();
        let state = self.state.clone();
        let handle = tokio::spawn(self.serve(stopped));
        RunningApp {
            address,
            state,
            stop,
            handle,
        }
    }

    async fn serve(self, stopped: CancellationToken) -> anyhow::Result<()> {
        let settings = &self.state.settings;
        let shipper = Shipper::new(
            self.state.db.clone(),
            self.state.analytics.clone(),
            ShipperConfig {
                batch_size: settings.analytics.batch_size,
                flush_interval: settings.analytics.flush_interval,
                poll_interval: settings.analytics.poll_interval,
                concurrency: settings.analytics.shippers,
                ..ShipperConfig::default()
            },
        );
        let shipper_task = shipper.spawn(stopped.clone());
        let imports_task = tokio::spawn(resume_imports(self.state.clone(), stopped.clone()));
        let webhooks_task =
            tokio::spawn(whatsapp::worker::run(self.state.clone(), stopped.clone()));
        let sweeper_task = tokio::spawn(chat::sweeper::run(self.state.clone(), stopped.clone()));
        let billing_task = tokio::spawn(crate::billing::sweeper::run(
            self.state.clone(),
            stopped.clone(),
        ));
        let dispatcher_task = tokio::spawn(crate::campaigns::dispatcher::run(
            self.state.clone(),
            stopped.clone(),
        ));
        if !settings.campaigns.dispatcher {
            dispatcher_task.abort();
        }
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped.clone().cancelled_owned())
        .await?;
        // The shipper makes a last flush on the way out; what remains ships next start.
        let _ = shipper_task.await;
        imports_task.abort();
        let _ = webhooks_task.await;
        let _ = sweeper_task.await;
        let _ = billing_task.await;
        let _ = dispatcher_task.await;
        Ok(())
    }
}

fn router(state: HttpState) -> Router {
    // Uploads are the largest bodies; JSON requests are held to their own limit in the
    // GraphQL handler.
    let settings = &state.app.settings;
    let max_body = settings
        .graphql
        .max_body_bytes
        .max(settings.imports.max_bytes.saturating_mul(2) + 64 * 1024);
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("x-project-id"),
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("idempotency-key"),
        ])
        // Browsers may let scripts read the limits only when told so.
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ]);
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id)
    });
    Router::new()
        .route(
            "/",
            get(|| async { Redirect::temporary("/graphql").into_response() }),
        )
        .route(
            "/graphql",
            get(graphql::http::graphql_get).post(graphql::http::graphql_post),
        )
        .route("/graphql/ws", get(ws::upgrade))
        .route("/downloads/{token}", get(downloads::serve))
        .route("/r/{token}", get(crate::campaigns::links::redirect))
        .route(
            "/api/campaigns/send",
            axum::routing::post(crate::campaigns::http::send),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route_service(
            whatsapp::webhook::PATH,
            whatsapp::webhook::routes(state.app.clone()),
        )
        .layer(DefaultBodyLimit::max(max_body))
        // Also caps bodies read as streams (uploads).
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(middleware::map_response(payload_too_large_as_json))
        .layer(middleware::from_fn_with_state(
            state.app.clone(),
            crate::limits::enforce,
        ))
        .layer(middleware::from_fn(observability::track_http))
        .layer(cors)
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(CatchPanicLayer::new())
        .with_state(state)
}

/// The body limit answers 413 in plain text; clients get the JSON error with a code like
/// every other refusal.
async fn payload_too_large_as_json(response: axum::response::Response) -> axum::response::Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if response.status() != axum::http::StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    let body = serde_json::json!({ "errors": [{
        "message": "the request body is larger than this server accepts",
        "extensions": { "code": crate::errors::ErrorCode::BadUserInput.as_str() },
    }] });
    (
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// Takes over imports whose runner stopped (a crash or a restart), now and every half
/// minute.
async fn resume_imports(state: AppState, stopped: CancellationToken) {
    loop {
        match import::resume_stalled(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(imports = n, "resumed stalled imports"),
            Err(err) => tracing::warn!(error = ?err, "could not look for stalled imports"),
        }
        tokio::select! {
            () = stopped.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
        }
    }
}

async fn analytics_store(settings: &Settings) -> anyhow::Result<Arc<dyn AnalyticsStore>> {
    let store: Arc<dyn AnalyticsStore> = match &settings.clickhouse {
        Some(ch) => Arc::new(ClickHouseStore::new(
            &ch.url,
            &ch.database,
            ch.user.as_deref(),
            ch.password.as_ref().map(|p| p.expose_secret()),
        )?),
        None => {
            std::fs::create_dir_all(&settings.data_dir)?;
            Arc::new(EmbeddedStore::open(&settings.data_dir.join("analytics.sqlite")).await?)
        }
    };
    store
        .migrate()
        .await
        .context("migrating the analytics store")?;
    Ok(store)
}

/// The signing key: configured, or (embedded mode only) generated once and kept in the
/// data directory so sessions survive restarts. Several nodes must share a configured one.
fn jwt_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.jwt.secret {
        return Ok(secret.expose_secret().as_bytes().to_vec());
    }
    anyhow::ensure!(
        settings.is_embedded_database(),
        "JWT_SECRET is required when DATABASE_URL points at a shared database"
    );
    let path = settings.data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read(&path)
        && existing.len() >= 32
    {
        return Ok(existing);
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let secret: [u8; 64] = rand::random();
    let encoded = hex::encode(secret).into_bytes();
    write_private(&path, &encoded)?;
    Ok(encoded)
}

fn write_private(path: &std::path::Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .with_context(|| format!("writing {}", path.display()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("stopping");
}
