//! A proxy speaking Redis's protocol between the user's app and the run's
//! private Redis, so that a scenario's queue faults reach the app's own
//! Sidekiq client and server:
//!
//! - `duplicate`: each job pushed onto a Sidekiq queue is pushed twice,
//!   same payload (so same `jid`), in the one command the app sent, inside
//!   `MULTI` too ([`duplicate`]);
//! - `down` for a window: every open connection closed, both sides, and the
//!   port refusing new ones, as when Redis restarts; then the same port
//!   serves again.
//!
//! Everything else passes through unchanged: commands the proxy does not
//! know, inline commands, and every reply, copied as bytes (RESP2 or RESP3
//! alike). Client frames are read by [`frame`]; one client's connection is
//! [`connection`]. A malformed frame closes that client's connection only,
//! with a warning naming the reason and the peer.
//!
//! Dropping a [`RedisProxy`] stops it: its tasks are aborted, which closes
//! its sockets.

pub mod connection;
pub mod duplicate;
pub mod frame;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a port still held by someone else is tried again after an
/// outage.
const REBIND_EVERY: Duration = Duration::from_millis(10);

/// How many failed re-binds go by between two warnings about them.
const REBIND_WARN_EVERY: u32 = 100;

/// How long the accept loop waits after a failed accept (out of file
/// descriptors, say) before the next, so that it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// How the proxy tells a Sidekiq queue's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyOptions {
    /// Keys of Sidekiq queues start with this: "queue:" or "myapp:queue:".
    pub queue_prefix: String,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            queue_prefix: "queue:".to_string(),
        }
    }
}

/// What the proxy did, as it happens (for the run's timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyEvent {
    /// A push duplicated: the queue key and each job's jid/class read from
    /// its JSON (None if not JSON). Sent when the push is forwarded, so a
    /// push inside a `MULTI` later discarded is counted too.
    Duplicated {
        key: String,
        jobs: Vec<(Option<String>, Option<String>)>,
    },
    DownStarted {
        closed_connections: usize,
    },
    DownEnded,
    /// A connection closed because its frame was malformed.
    Malformed {
        peer: SocketAddr,
        reason: String,
    },
}

/// What the proxy has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client command frames forwarded to Redis (a doubled push is one).
    pub commands_forwarded: u64,
    /// Jobs pushed a second time.
    pub jobs_duplicated: u64,
    pub connections_accepted: u64,
    /// Connections ended, by either side, by an outage or by a malformed
    /// frame.
    pub connections_closed: u64,
}

/// The counters behind [`ProxyStats`].
#[derive(Debug, Default)]
struct Counters {
    commands_forwarded: AtomicU64,
    jobs_duplicated: AtomicU64,
    connections_accepted: AtomicU64,
    connections_closed: AtomicU64,
}

/// What the proxy's tasks share.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    queue_prefix: String,
    /// The port it listens on, the same after every outage.
    addr: SocketAddr,
    duplicate: AtomicBool,
    down: AtomicBool,
    counters: Counters,
    events: UnboundedSender<ProxyEvent>,
    /// The open connections' tasks, by id: aborted when an outage starts
    /// or the proxy stops. Whoever takes a task out of here counts it
    /// closed, so no connection is counted twice.
    connections: Mutex<HashMap<u64, JoinHandle<()>>>,
    next_connection: AtomicU64,
    /// The accept loop, `None` while down (its listener is closed).
    accepting: Mutex<Option<JoinHandle<()>>>,
    /// When the outage under way ends.
    down_until: Mutex<Option<Instant>>,
    /// Held while the proxy goes down or comes back up, so that an outage
    /// asked for while one ends is not lost.
    switching: tokio::sync::Mutex<()>,
}

/// A lock that a panicked holder did not poison for good: every critical
/// section here leaves the data whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn event(&self, event: ProxyEvent) {
        // Nobody listening is fine: the events are for whoever asks.
        let _ = self.events.send(event);
    }

    /// Starts accepting on `listener`; each client served by a task of its
    /// own, registered so that an outage can close it.
    fn accept_on(self: &Arc<Self>, listener: TcpListener) {
        let shared = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                let (client, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(%err, "the Redis proxy could not accept a connection");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                shared
                    .counters
                    .connections_accepted
                    .fetch_add(1, Ordering::Relaxed);
                let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
                // Registered under the lock before it can run, so that its
                // own removal at its end always finds it.
                let mut connections = lock(&shared.connections);
                let served = Arc::clone(&shared);
                let task = tokio::spawn(async move {
                    connection::serve(client, peer, Arc::clone(&served)).await;
                    if lock(&served.connections).remove(&id).is_some() {
                        served
                            .counters
                            .connections_closed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                });
                connections.insert(id, task);
            }
        });
        *lock(&self.accepting) = Some(task);
    }

    /// Stops accepting and waits until the listener is closed.
    async fn stop_accepting(&self) {
        let task = lock(&self.accepting).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Closes every open connection, both sides, and waits until they are
    /// closed: how many there were.
    async fn close_connections(&self) -> usize {
        let tasks: Vec<_> = lock(&self.connections).drain().map(|(_, t)| t).collect();
        self.counters
            .connections_closed
            .fetch_add(tasks.len() as u64, Ordering::Relaxed);
        for task in &tasks {
            task.abort();
        }
        let closed = tasks.len();
        for task in tasks {
            let _ = task.await;
        }
        closed
    }

    /// Aborts every task without waiting (for [`Drop`]).
    fn abort_all(&self) {
        if let Some(task) = lock(&self.accepting).take() {
            task.abort();
        }
        for (_, task) in lock(&self.connections).drain() {
            task.abort();
        }
    }

    /// The outage's end: waits for [`down_until`](Self::down_until) (which
    /// a later `down_for` may push back), listens again on the same port,
    /// and says so.
    async fn end_outage(self: Arc<Self>) {
        loop {
            let Some(until) = *lock(&self.down_until) else {
                return;
            };
            tokio::time::sleep_until(until).await;
            let _switching = self.switching.lock().await;
            let until = *lock(&self.down_until);
            if until.is_some_and(|until| until > Instant::now()) {
                continue;
            }
            let listener = self.bind_again().await;
            self.accept_on(listener);
            *lock(&self.down_until) = None;
            self.down.store(false, Ordering::SeqCst);
            self.event(ProxyEvent::DownEnded);
            return;
        }
    }

    /// Binds the proxy's port again, trying every [`REBIND_EVERY`] until it
    /// is free (another program may hold it for a while).
    async fn bind_again(&self) -> TcpListener {
        let mut failures = 0u32;
        loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => return listener,
                Err(err) => {
                    if failures.is_multiple_of(REBIND_WARN_EVERY) {
                        tracing::warn!(addr = %self.addr, %err, failures, "the Redis proxy cannot listen again after its outage; retrying");
                    }
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(REBIND_EVERY).await;
                }
            }
        }
    }
}

/// A Redis proxy on 127.0.0.1, forwarding each client to one Redis, with
/// its queue faults. Dropping it stops everything (tasks aborted, sockets
/// closed).
#[derive(Debug)]
pub struct RedisProxy {
    shared: Arc<Shared>,
    /// The task that ends the outage under way.
    outage: Mutex<Option<JoinHandle<()>>>,
    /// Its events, until someone takes them.
    events: Mutex<Option<UnboundedReceiver<ProxyEvent>>>,
}

impl RedisProxy {
    /// Listens on 127.0.0.1:<free port> and forwards each client to `upstream`.
    pub async fn start(upstream: SocketAddr, options: ProxyOptions) -> std::io::Result<RedisProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            upstream,
            queue_prefix: options.queue_prefix,
            addr,
            duplicate: AtomicBool::new(false),
            down: AtomicBool::new(false),
            counters: Counters::default(),
            events: sender,
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
            accepting: Mutex::new(None),
            down_until: Mutex::new(None),
            switching: tokio::sync::Mutex::new(()),
        });
        shared.accept_on(listener);
        Ok(RedisProxy {
            shared,
            outage: Mutex::new(None),
            events: Mutex::new(Some(receiver)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `redis://127.0.0.1:PORT`, for `{redis}`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.shared.addr)
    }

    /// Turns the `duplicate` fault on or off, for the pushes forwarded from
    /// now on.
    pub fn set_duplicate(&self, on: bool) {
        self.shared.duplicate.store(on, Ordering::SeqCst);
    }

    /// Starts an outage of `for_` now (closes open connections, refuses new
    /// ones), ends by itself. Returns when the outage has begun (listener
    /// closed, and every open connection with it). Asked for during an
    /// outage, it makes that one last until `for_` from now if that is
    /// later, with no second `DownStarted`.
    pub async fn down_for(&self, for_: Duration) {
        let shared = &self.shared;
        let _switching = shared.switching.lock().await;
        let until = Instant::now() + for_;
        if shared.down.load(Ordering::SeqCst) {
            let mut down_until = lock(&shared.down_until);
            *down_until = Some(down_until.map_or(until, |current| current.max(until)));
            return;
        }
        *lock(&shared.down_until) = Some(until);
        shared.down.store(true, Ordering::SeqCst);
        // The listener first, so that no client gets in after the others
        // are closed.
        shared.stop_accepting().await;
        let closed_connections = shared.close_connections().await;
        shared.event(ProxyEvent::DownStarted { closed_connections });
        let ending = tokio::spawn(Arc::clone(shared).end_outage());
        if let Some(ended) = lock(&self.outage).replace(ending) {
            ended.abort();
        }
    }

    pub fn is_down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }

    /// What the proxy did, as it happens (for the run's timeline). The first
    /// call gets every event since the start; a later one gets a receiver
    /// that is already closed.
    pub fn events(&self) -> UnboundedReceiver<ProxyEvent> {
        lock(&self.events).take().unwrap_or_else(|| {
            let (_, closed) = mpsc::unbounded_channel();
            closed
        })
    }

    /// Commands forwarded, jobs duplicated, connections accepted and closed.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            commands_forwarded: c.commands_forwarded.load(Ordering::Relaxed),
            jobs_duplicated: c.jobs_duplicated.load(Ordering::Relaxed),
            connections_accepted: c.connections_accepted.load(Ordering::Relaxed),
            connections_closed: c.connections_closed.load(Ordering::Relaxed),
        }
    }

    /// Stops it and waits until its listener and connections are closed.
    pub async fn stop(self) {
        let outage = lock(&self.outage).take();
        if let Some(outage) = outage {
            outage.abort();
            let _ = outage.await;
        }
        self.shared.stop_accepting().await;
        self.shared.close_connections().await;
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        if let Some(outage) = lock(&self.outage).take() {
            outage.abort();
        }
        self.shared.abort_all();
    }
}
