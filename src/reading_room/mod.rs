//! `ismf reading-room`: the page the predictions are for. An MQTT 5 subscriber with a persistent
//! session (what is published while it is down arrives when it returns) feeds a durable,
//! bounded [`store`]; [`web`] serves the worklist, the appliance and events panels, a JSON API
//! and a live stream from it. Every message is checked by [`validate`] first: what fails is
//! counted and listed by its reason, never shown.
//!
//! One process, one tokio runtime: the subscriber task writes the store (each message committed
//! before it is acknowledged to the broker) and broadcasts the change; the web server reads the
//! store and forwards the broadcast to every open page.

pub mod store;
pub mod validate;
pub mod web;

use crate::publish::mqtt::MqttError;
use crate::publish::subscribe::{self, Received, SubscribeOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Retention, Store, StoreError};
use tokio::sync::broadcast;
use validate::Valid;
use web::{AppState, ApplianceView, BrokerView, Live, Update};

#[derive(Debug, thiserror::Error)]
pub enum ReadingRoomError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "listening on {0} serves other machines: give an access token with --token-file \
         (and preferably --tls-cert/--tls-key), or listen on 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    #[error("token file {path}: {reason}")]
    Token { path: PathBuf, reason: String },
    #[error("--tls-cert and --tls-key go together")]
    TlsPair,
    #[error("the subscriber task failed: {0}")]
    Task(String),
}

/// `ismf reading-room`'s settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// The broker and this reading room's persistent session (its client id).
    pub subscribe: SubscribeOptions,
    pub listen: SocketAddr,
    /// The redb file.
    pub store: PathBuf,
    pub retention: Retention,
    /// A file holding the access token (required unless `listen` is a loopback address).
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate and key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// An online appliance whose last status is older than this is shown as stale.
    pub stale_after: Duration,
}

fn read_token(path: &std::path::Path) -> Result<String, ReadingRoomError> {
    let bad = |reason: String| ReadingRoomError::Token {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let token = text.trim().to_string();
    if token.len() < 16 {
        return Err(bad(format!(
            "the token has {} characters; use at least 16 (e.g. `openssl rand -hex 24`)",
            token.len()
        )));
    }
    // Characters that pass unchanged through a URL query and a cookie.
    if !token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
    {
        return Err(bad(
            "the token may hold only letters, digits and . _ ~ - (e.g. `openssl rand -hex 24`)"
                .into(),
        ));
    }
    Ok(token)
}

/// Handles one received message: validated, committed, broadcast. `Err` stops the subscriber
/// before the message is acknowledged (the broker delivers it again after a restart).
fn take(
    store: &Store,
    updates: &broadcast::Sender<Live>,
    prefix: &str,
    stale_after: Duration,
    r: &Received,
) -> Result<(), StoreError> {
    let now = crate::publish::message::unix_seconds();
    let update = match validate::check(&r.topic, r.kind, prefix, &r.payload) {
        Ok(Valid::Prediction(p)) => store.put_prediction(p, now)?.map(Update::Prediction),
        Ok(Valid::KeyImages { sha256, png }) => store
            .put_key_image(&sha256, &png, now)?
            .map(Update::Prediction),
        Ok(Valid::Status(s)) => {
            // An empty retained message clears a status: that is a broker operation, not an
            // appliance's message, and is ignored here.
            store
                .put_status(s, r.retained, now)?
                .map(|row| Update::Appliance(ApplianceView::of(&row, now, stale_after)))
        }
        Ok(Valid::Event(e)) => store.put_event(e, now)?.map(Update::Event),
        Err(_) if r.payload.is_empty() && r.retained => None,
        Err(invalid) => {
            tracing::warn!(topic = %r.topic, reason = %invalid, "refused an invalid message");
            let (total, latest) = store.put_invalid(&r.topic, &invalid.0, now)?;
            Some(Update::Invalid { total, latest })
        }
    };
    if let Some(update) = update {
        // No page open is not an error.
        let _ = updates.send(Live::from(update));
    }
    Ok(())
}

/// Runs the reading room until `stop` completes. Fails at once (before subscribing) when the
/// store cannot be opened or the address cannot be listened on.
pub async fn serve(
    opts: Options,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ReadingRoomError> {
    let token = match (&opts.token_file, opts.listen.ip().is_loopback()) {
        (Some(path), _) => Some(read_token(path)?),
        (None, true) => None,
        (None, false) => return Err(ReadingRoomError::TokenRequired(opts.listen)),
    };
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(crate::tls::server_config(cert, key, None)?)),
        (None, None) => None,
        _ => return Err(ReadingRoomError::TlsPair),
    };
    let store = Arc::new(Store::open(&opts.store, opts.retention)?);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ReadingRoomError::Listen {
            addr: opts.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(opts.listen);
    let (updates, _) = broadcast::channel(1024);
    let broker = Arc::new(Mutex::new(BrokerView {
        url: opts.subscribe.url.to_string(),
        connected: false,
        last_error: None,
    }));
    let state = AppState {
        store: store.clone(),
        updates: updates.clone(),
        broker: broker.clone(),
        token: token.map(Arc::from),
        stale_after: opts.stale_after,
        tls: tls.is_some(),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(url = %format!("{scheme}://{local}/"), store = %opts.store.display(), "reading room listening");

    // The subscriber is a task of its own: its store commits block the worker they run on
    // (block_in_place), never the web server's accept loop.
    let feed = {
        let sub = opts.subscribe.clone();
        let prefix = sub.topic_prefix.clone();
        let stale_after = opts.stale_after;
        let store = store.clone();
        tokio::spawn(async move {
            let mut failure: Option<StoreError> = None;
            let set_broker = |connected: bool, error: Option<String>| {
                let view = {
                    let Ok(mut b) = broker.lock() else { return };
                    b.connected = connected;
                    if connected {
                        b.last_error = None;
                    } else if error.is_some() {
                        b.last_error = error;
                    }
                    b.clone()
                };
                let _ = updates.send(Live::from(Update::Broker(view)));
            };
            let result = subscribe::run(
                &sub,
                |r| {
                    let taken = tokio::task::block_in_place(|| {
                        take(&store, &updates, &prefix, stale_after, &r)
                    });
                    match taken {
                        Ok(()) => true,
                        Err(e) => {
                            failure = Some(e);
                            false
                        }
                    }
                },
                |e| {
                    tracing::warn!(error = %e, "broker connection; retrying");
                    set_broker(false, Some(crate::publish::mqtt::explain(e)));
                },
                || set_broker(true, None),
            )
            .await;
            match failure {
                Some(e) => Err(ReadingRoomError::Store(e)),
                None => result.map_err(ReadingRoomError::from),
            }
        })
    };
    // Rows past `max_age` go even when nothing arrives.
    let pruner = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(600));
            loop {
                every.tick().await;
                let store = store.clone();
                let now = crate::publish::message::unix_seconds();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.prune_aged(now)).await
                {
                    tracing::error!(error = %e, "pruning the reading-room store");
                }
            }
        })
    };
    let app = web::router(state);
    let server = async move {
        match tls {
            None => axum::serve(listener, app)
                .await
                .map_err(|source| ReadingRoomError::Listen {
                    addr: local,
                    source,
                }),
            Some(config) => serve_tls(listener, app, config).await,
        }
    };
    let result = tokio::select! {
        r = feed => r.unwrap_or_else(|e| Err(ReadingRoomError::Task(e.to_string()))),
        r = server => r,
        _ = stop => {
            tracing::info!("reading room stopping");
            Ok(())
        }
    };
    pruner.abort();
    result
}

/// HTTPS: each accepted connection's TLS handshake, then HTTP/1.1 on it (hyper).
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
) -> Result<(), ReadingRoomError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTPS connection");
            }
        });
    }
}
