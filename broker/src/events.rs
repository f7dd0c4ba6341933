//! Session events: `GET /debug/events`, a caller WebSocket that tells what happens to the
//! sessions of a cluster (or to one session) as it happens: `session.created`,
//! `command.started`, `command.finished`, `session.closed`, `session.expired`.
//!
//! Events are published only while someone reads them: a replica with readers of a cluster says
//! so to every replica (the store's interest announcement, every
//! [`EVENT_INTEREST_EVERY`]), and each replica publishes that cluster's events for three times
//! that long after hearing it. With no reader anywhere an event costs a map lookup. Readers get
//! the events through the store (the cluster's event channel) into a bounded [`Feed`] each;
//! a reader that falls behind is told how many bytes of events it missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket as Socket};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use kubeline_shared::api::{CommandResult, SessionEvent, SessionEventKind};
use serde_json::json;
use tracing::{Instrument, info_span, warn};

use crate::AppState;
use crate::auth::Caller;
use crate::auth::grant::Scope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, WebSocket};
use crate::routes::{load_session, valid_cluster_id};
use crate::store::{EVENT_INTEREST_EVERY, QueuedCommand, SessionRecord, Store};
use crate::stream::{Feed, FeedPiece};

/// Bytes of events held per reader that has not read them yet.
const READER_BUFFER_BYTES: usize = 256 * 1024;
/// Largest frame a reader may send (none is expected); bigger closes the socket.
const MAX_READER_FRAME: usize = 1024;

/// Readers by cluster: each with its id and feed.
type Readers = HashMap<String, Vec<(u64, Arc<Feed>)>>;

/// This replica's side of session events: who reads which cluster's here, and which clusters
/// some replica reads.
pub struct SessionEvents {
    store: Arc<dyn Store>,
    /// Clusters with readers somewhere, until when (from the interest announcements).
    interest: Mutex<HashMap<String, Instant>>,
    /// Readers on this replica, by cluster.
    readers: Mutex<Readers>,
    next_reader: AtomicU64,
}

impl SessionEvents {
    /// No readers yet.
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            interest: Mutex::default(),
            readers: Mutex::default(),
            next_reader: AtomicU64::new(0),
        })
    }

    fn readers(&self) -> std::sync::MutexGuard<'_, Readers> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn interest(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.interest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `event` of a session owned by `owner` if some replica reads its cluster's
    /// events; never waits for the store.
    pub fn emit(&self, event: SessionEvent, owner: Option<&str>) {
        if !self.wanted(&event.cluster_id) {
            return;
        }
        let store = self.store.clone();
        let published = Published {
            owner: owner.map(str::to_owned),
            event,
        };
        let json = serde_json::to_string(&published).expect("session events always serialize");
        let event = published.event;
        tokio::spawn(async move {
            if let Err(e) = store.publish_session_event(&event.cluster_id, &json).await {
                warn!(cluster = %event.cluster_id, error = %e, "cannot publish a session event");
            }
        });
    }

    /// Whether some replica reads `cluster_id`'s events now.
    pub fn wanted(&self, cluster_id: &str) -> bool {
        let mut interest = self.interest();
        match interest.get(cluster_id) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                interest.remove(cluster_id);
                false
            }
            None => false,
        }
    }

    /// `kind` happened to `session`.
    pub fn session(&self, kind: SessionEventKind, session: &SessionRecord) {
        self.emit(
            SessionEvent {
                kind,
                at: Utc::now(),
                session_id: session.session_id.clone(),
                cluster_id: session.cluster_id.clone(),
                result_id: None,
                command_type: None,
                args: None,
                status: None,
                exit_code: None,
                execution_time_ms: None,
            },
            session.owner.as_deref(),
        );
    }

    /// `command` (of a session owned by `owner`) was accepted and queued.
    pub fn command_started(&self, command: &QueuedCommand, owner: Option<&str>) {
        self.emit(
            command_event(SessionEventKind::CommandStarted, command),
            owner,
        );
    }

    /// `command` ended with `result`.
    pub fn command_finished(
        &self,
        command: &QueuedCommand,
        result: &CommandResult,
        owner: Option<&str>,
    ) {
        let mut event = command_event(SessionEventKind::CommandFinished, command);
        event.status = Some(result.status);
        event.exit_code = result.exit_code;
        event.execution_time_ms = Some(result.execution_time_ms);
        self.emit(event, owner);
    }

    /// Some replica reads `cluster_id`'s events (an announcement from the store).
    pub(crate) fn interested(&self, cluster_id: String) {
        let until = Instant::now() + EVENT_INTEREST_EVERY * 3;
        self.interest().insert(cluster_id, until);
    }

    /// Hands a published event to this replica's readers of its cluster.
    pub(crate) fn deliver(&self, cluster_id: &str, event: String) {
        let readers: Vec<Arc<Feed>> = self
            .readers()
            .get(cluster_id)
            .map(|r| r.iter().map(|(_, feed)| feed.clone()).collect())
            .unwrap_or_default();
        for feed in readers {
            feed.output(event.clone());
        }
    }

    /// Registers a reader of `cluster_id`'s events; it is forgotten when the guard drops.
    async fn read(self: &Arc<Self>, cluster_id: &str) -> ApiResult<Reader> {
        let id = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let feed = Feed::new(READER_BUFFER_BYTES);
        let first = {
            let mut readers = self.readers();
            let list = readers.entry(cluster_id.to_owned()).or_default();
            list.push((id, feed.clone()));
            list.len() == 1
        };
        let reader = Reader {
            events: self.clone(),
            cluster_id: cluster_id.to_owned(),
            id,
            feed,
        };
        if first {
            self.store.watch_session_events(cluster_id, true).await?;
        }
        self.store.announce_event_interest(cluster_id).await?;
        Ok(reader)
    }
}

fn command_event(kind: SessionEventKind, command: &QueuedCommand) -> SessionEvent {
    SessionEvent {
        kind,
        at: Utc::now(),
        session_id: command.session_id.clone(),
        cluster_id: command.cluster_id.clone(),
        result_id: Some(command.result_id.clone()),
        command_type: Some(command.command_type.clone()),
        args: Some(command.args.clone()),
        status: None,
        exit_code: None,
        execution_time_ms: None,
    }
}

/// An event as the store carries it: with the credential owning its session, so that a reader
/// who may see only its own sessions gets only theirs (the owner is not sent to readers).
#[derive(serde::Serialize, serde::Deserialize)]
struct Published {
    owner: Option<String>,
    event: SessionEvent,
}

/// One reader's registration.
struct Reader {
    events: Arc<SessionEvents>,
    cluster_id: String,
    id: u64,
    feed: Arc<Feed>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let last = {
            let mut readers = self.events.readers();
            let Some(list) = readers.get_mut(&self.cluster_id) else {
                return;
            };
            list.retain(|(id, _)| *id != self.id);
            let last = list.is_empty();
            if last {
                readers.remove(&self.cluster_id);
            }
            last
        };
        if last {
            let (store, cluster) = (self.events.store.clone(), self.cluster_id.clone());
            tokio::spawn(async move {
                if let Err(e) = store.watch_session_events(&cluster, false).await {
                    warn!(cluster = %cluster, error = %e, "cannot stop watching session events");
                }
            });
        }
    }
}

/// Query of `GET /debug/events`: one of the two.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Every session of this cluster (the caller's own, or all of them for an admin of it).
    #[param(example = "production-cluster")]
    pub cluster_id: Option<String>,
    /// Only this session.
    #[param(example = "sess_abc123def456")]
    pub session_id: Option<String>,
}

/// Stream session events over a WebSocket.
///
/// Each text frame is a `SessionEvent` (`session.created`, `command.started`,
/// `command.finished`, `session.closed`, `session.expired`), from the moment the socket is open;
/// `{"type":"dropped","bytes":N}` says events were missed (the reader fell behind). Give
/// `cluster_id` (events of the sessions the caller may read on it) or `session_id` (one
/// session). Ends (with `{"type":"end","reason":…}`) after `--stream-max-seconds`, when the
/// credential ends, or when the broker shuts down; the caller may close at any time.
#[utoipa::path(get, path = "/debug/events", tag = "sessions",
    params(EventsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket; frames are `SessionEvent`s.", body = SessionEvent),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ))]
pub async fn session_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
    ws: WebSocket,
) -> Response {
    match open(&state, &caller, q).await {
        Ok((filter, reader, permit)) => {
            let changes = state.credentials.changes();
            let socket =
                ws.0.read_buffer_size(crate::stream::CALLER_READ_BUFFER)
                    .write_buffer_size(0)
                    .max_message_size(MAX_READER_FRAME)
                    .max_frame_size(MAX_READER_FRAME);
            let span = info_span!("session_events", cluster = %reader.cluster_id);
            socket.on_upgrade(move |socket| {
                async move {
                    let _permit = permit;
                    run(&state, &caller, filter, reader, socket, changes).await;
                }
                .instrument(span)
            })
        }
        Err(e) => e.into_response(),
    }
}

/// Which events a reader gets: a cluster's, and of those only its own sessions' unless it is an
/// admin of the cluster, or one session's.
struct Filter {
    session_id: Option<String>,
    /// The caller's credential, when it may read only its own sessions.
    owner: Option<String>,
}

async fn open(
    state: &AppState,
    caller: &Caller,
    q: EventsQuery,
) -> ApiResult<(Filter, Reader, crate::limits::Permit<String>)> {
    let (cluster_id, filter) = match (q.cluster_id, q.session_id) {
        (_, Some(session_id)) if !session_id.is_empty() => {
            let session = load_session(state, caller, &session_id).await?;
            let filter = Filter {
                session_id: Some(session_id),
                owner: None,
            };
            (session.cluster_id, filter)
        }
        (Some(cluster_id), _) if !cluster_id.is_empty() => {
            let cluster_id = valid_cluster_id(cluster_id)?;
            caller.require_cluster(&cluster_id)?;
            let admin = caller.access.scope_on(&cluster_id) == Some(Scope::Admin);
            let owner = (!admin).then(|| caller.credential_id.to_string());
            let filter = Filter {
                session_id: None,
                owner,
            };
            (cluster_id, filter)
        }
        _ => {
            return Err(ApiError::bad_request(
                "Give cluster_id (the events of a cluster's sessions) or session_id (one \
                 session's)",
                json!({ "field": "cluster_id", "code": "missing_field" }),
            ));
        }
    };
    // An event reader is a stream: it counts against the caller's open streams.
    let permit = crate::stream::key_stream_permit(state, caller)?;
    let reader = state.hub.events().read(&cluster_id).await?;
    Ok((filter, reader, permit))
}

async fn run(
    state: &AppState,
    caller: &Caller,
    filter: Filter,
    reader: Reader,
    mut socket: Socket,
    changes: tokio::sync::broadcast::Receiver<Arc<str>>,
) {
    let settings = &state.settings.streams;
    let send_within = Duration::from_secs(settings.stream_send_timeout_seconds);
    let lifetime = tokio::time::sleep(Duration::from_secs(settings.stream_max_seconds));
    tokio::pin!(lifetime);
    let ended = crate::auth::ended(state, caller, changes);
    tokio::pin!(ended);
    let mut shutdown = std::pin::pin!(state.hub.shutting_down());
    let mut announce = tokio::time::interval(EVENT_INTEREST_EVERY);
    announce.tick().await;
    let store = state.hub.store().clone();
    let reason: &str = loop {
        tokio::select! {
            piece = reader.feed.next_piece() => {
                let text = match piece {
                    FeedPiece::Output(published) => match wanted(&filter, &published) {
                        Some(event) => event,
                        None => continue,
                    },
                    FeedPiece::Dropped(bytes) => json!({ "type": "dropped", "bytes": bytes }).to_string(),
                };
                match tokio::time::timeout(send_within, socket.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => break "slow_consumer",
                }
            }
            frame = socket.recv() => match frame {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = announce.tick() => {
                if let Err(e) = store.announce_event_interest(&reader.cluster_id).await {
                    warn!(error = %e, "cannot renew the interest in session events");
                }
            }
            () = &mut lifetime => break "lifetime",
            _ = &mut ended => break "credential_ended",
            () = &mut shutdown => break "shutdown",
        }
    };
    let end = json!({ "type": "end", "reason": reason }).to_string();
    let _ = tokio::time::timeout(send_within, async {
        socket.send(Message::Text(end.into())).await?;
        socket
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "events ended".into(),
            })))
            .await
    })
    .await;
}

/// The frame a reader with `filter` gets for a published event (its JSON), if any.
fn wanted(filter: &Filter, published: &str) -> Option<String> {
    let Published { owner, event } = serde_json::from_str(published).ok()?;
    let session = filter
        .session_id
        .as_ref()
        .is_none_or(|s| *s == event.session_id);
    let owned = filter
        .owner
        .as_ref()
        .is_none_or(|o| owner.as_ref() == Some(o));
    (session && owned).then(|| serde_json::to_string(&event).expect("events serialize"))
}
