//! One client's connection through the proxy: its own connection to Redis,
//! commands read frame by frame on the way up (a queue push doubled when
//! the fault is on), replies copied as bytes on the way down.
//!
//! Why one Redis connection per client: a connection's state in Redis
//! (`MULTI`, `SELECT`, `HELLO 3`, subscriptions, `CLIENT TRACKING`) then
//! stays the client's own, and the proxy need not understand any of it.
//! Why replies are not parsed: nothing in them is rewritten, and copied as
//! bytes they are whatever protocol the client and Redis agreed on.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::duplicate::{job_of, queue_push, write_doubled};
use super::frame::{CommandReader, Frame};
use super::{ProxyEvent, Shared};

/// How much one read asks for, each way.
const READ_CHUNK: usize = 64 * 1024;

/// The most room the outgoing buffer keeps between reads.
const KEPT_OUT: usize = 1024 * 1024;

/// How the client's side of a connection ended.
enum Ended {
    /// The client closed its side: Redis is told, and its last replies
    /// still go down.
    ClientDone,
    /// The client sent what is no command.
    Malformed(String),
    /// A read or write failed, or Redis closed.
    Broken,
}

/// Serves `client` (from `peer`) until either side closes, a frame is
/// malformed, or the task is aborted (an outage, the proxy stopped):
/// both sockets are closed when it returns or is dropped.
pub(super) async fn serve(client: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let upstream = match TcpStream::connect(shared.upstream).await {
        Ok(upstream) => upstream,
        Err(err) => {
            tracing::warn!(%peer, upstream = %shared.upstream, %err, "cannot reach Redis for a client; closing the client's connection");
            return;
        }
    };
    // Round trips of one small command each are the common case.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let commands = forward_commands(client_read, upstream_write, &shared);
    let replies = copy_replies(upstream_read, client_write);
    tokio::pin!(commands, replies);
    let ended = tokio::select! {
        ended = &mut commands => Some(ended),
        () = &mut replies => None,
    };
    match ended {
        Some(Ended::ClientDone) => replies.await,
        Some(Ended::Malformed(reason)) => {
            tracing::warn!(%peer, %reason, "closing a Redis client's connection: malformed command frame");
            shared.event(ProxyEvent::Malformed { peer, reason });
        }
        Some(Ended::Broken) | None => {}
    }
}

/// Reads the client's commands and forwards them, each read's frames in
/// one write; a queue push doubled while the fault is on.
async fn forward_commands(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: &Shared,
) -> Ended {
    let mut reader = CommandReader::new();
    let mut out = Vec::with_capacity(READ_CHUNK);
    loop {
        let buffer = reader.buffer();
        buffer.reserve(READ_CHUNK);
        match from.read_buf(buffer).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return Ended::ClientDone;
            }
            Ok(_) => {}
            Err(_) => return Ended::Broken,
        }
        let mut forwarded = 0;
        let malformed = loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    forwarded += 1;
                    forward(frame, shared, &mut out);
                }
                Ok(None) => break None,
                Err(why) => break Some(why),
            }
        };
        // Counted before the write, so that whoever has a reply sees the
        // command counted.
        shared
            .counters
            .commands_forwarded
            .fetch_add(forwarded, Ordering::Relaxed);
        if !out.is_empty() {
            if to.write_all(&out).await.is_err() {
                return Ended::Broken;
            }
            out.clear();
            if out.capacity() > KEPT_OUT {
                out.shrink_to(READ_CHUNK);
            }
        }
        if let Some(why) = malformed {
            return Ended::Malformed(why.0);
        }
    }
}

/// Appends `frame` to `out` as it came, or doubled if it is a queue push
/// while the `duplicate` fault is on (with its event).
fn forward(frame: Frame<'_>, shared: &Shared, out: &mut Vec<u8>) {
    if shared.duplicate.load(Ordering::Relaxed) {
        if let Some(push) = queue_push(&frame, &shared.queue_prefix) {
            write_doubled(&push, out);
            shared
                .counters
                .jobs_duplicated
                .fetch_add(push.payloads.len() as u64, Ordering::Relaxed);
            shared.event(ProxyEvent::Duplicated {
                key: String::from_utf8_lossy(push.key).into_owned(),
                jobs: push.payloads.iter().map(|p| job_of(p)).collect(),
            });
            return;
        }
    }
    out.extend_from_slice(frame.raw());
}

/// Copies Redis's replies to the client as they come, until either closes.
async fn copy_replies(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
