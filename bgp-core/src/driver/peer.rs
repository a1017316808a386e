//! The tokio task that runs one [`Session`] over real TCP connections.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::{PeerOutbox, Signal, Transport};
use crate::session::{ConnId, Session, SessionEvent, State};
use crate::wire::{Notification, RouteRefresh};

use super::sys;

/// Tells a peer task what to do.
#[derive(Debug)]
pub enum PeerCommand {
    /// ManualStart.
    Start,
    /// ManualStop with this NOTIFICATION (Cease / Administrative Shutdown).
    Stop(Notification),
    /// An accepted connection from this peer (the listener hands it over).
    Inbound(TcpStream),
    /// Ask the peer to resend a family (ROUTE-REFRESH).
    RouteRefresh(RouteRefresh),
    /// Stop, send this NOTIFICATION, and end the task.
    Shutdown(Notification),
    /// End the task now, closing the connection without a NOTIFICATION:
    /// a graceful-restart peer keeps our routes as stale until we are back
    /// (RFC 4724 §4.2; BIRD's `graceful restart` command).
    Abandon,
    /// Clear the graceful-restart Restart State bit in the OPENs sent from
    /// now on (RFC 4724 §3: only the first OPEN after a restart sets it).
    ClearRestartState,
}

/// Where a peer task takes its outgoing UPDATEs from, already encoded.
/// The owner keeps the Adj-RIB-Out; the task pulls batches only when the
/// connection has room, so a slow peer holds back nobody else and nothing
/// queues without bound.
pub trait UpdateSource: Send + Sync + 'static {
    /// Appends about `max` encoded UPDATEs to send next to `out`; returns
    /// whether more are waiting.
    fn take(&self, max: usize, out: &mut Vec<Bytes>) -> bool;
    /// Raised whenever [`take`](UpdateSource::take) may return something.
    fn signal(&self) -> &Signal;
}

impl UpdateSource for PeerOutbox {
    fn take(&self, max: usize, out: &mut Vec<Bytes>) -> bool {
        PeerOutbox::take(self, max, out)
    }

    fn signal(&self) -> &Signal {
        PeerOutbox::signal(self)
    }
}

/// What a peer task reports to its owner.
#[derive(Debug)]
pub struct PeerEvent<K> {
    /// The owner's key for this peer.
    pub peer: K,
    /// Our address on the session's connection, when one is up (the next
    /// hop we announce when setting ourselves as next hop).
    pub local: Option<SocketAddr>,
    /// What happened.
    pub event: SessionEvent,
}

/// Take more UPDATEs only while fewer than this many messages wait in the
/// session: enough to keep the socket busy, small enough to bound memory.
const LOW_WATER: usize = 32;
/// Messages handed to a connection's writer ahead of the socket.
const WRITER_QUEUE: usize = 64;
/// Bytes of waiting messages a writer joins into one write.
const COALESCE: usize = 64 * 1024;

struct Conn {
    read: OwnedReadHalf,
    write: mpsc::Sender<Bytes>,
    /// The writer task: it ends once it has written everything sent to
    /// `write` and the sender is dropped.
    writer: tokio::task::JoinHandle<()>,
    local: Option<SocketAddr>,
}

/// How long a closing connection's writer gets to put its last bytes (the
/// NOTIFICATION saying why) on the wire.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

impl Conn {
    /// Sends `last`, then closes the connection once the writer has written
    /// them: a NOTIFICATION reaches the peer before the FIN, even when the
    /// process exits right after.
    async fn close_after(self, last: Vec<Bytes>) {
        for bytes in last {
            let _ = self.write.send(bytes).await;
        }
        drop(self.write);
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, self.writer).await;
    }
}

/// Creates the outbound socket with its options and connects.
async fn connect(t: Transport) -> io::Result<TcpStream> {
    let socket = if t.remote.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(key) = &t.md5_key {
        sys::set_tcp_md5(&socket, t.remote, key.expose().as_bytes())?;
    }
    if let Some(hops) = t.ttl_security {
        sys::set_ttl_security(&socket, t.remote.is_ipv6(), hops)?;
    }
    if let Some(local) = t.local {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    tokio::time::timeout(t.connect_timeout, socket.connect(t.remote))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

/// Prepares an accepted connection (GTSM applies per peer) and splits it.
fn open_conn(stream: TcpStream, transport: &Transport) -> io::Result<Conn> {
    stream.set_nodelay(true)?;
    let local = stream.local_addr().ok();
    if let Some(hops) = transport.ttl_security {
        sys::set_ttl_security(&stream, transport.remote.is_ipv6(), hops)?;
    }
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITER_QUEUE);
    let writer = tokio::spawn(async move {
        // Messages waiting together go out in one write: a reflector sends
        // thousands of small UPDATEs, and a syscall each would cost more
        // than everything else it does for them.
        let mut buf = Vec::with_capacity(COALESCE);
        while let Some(first) = rx.recv().await {
            let written = match rx.try_recv() {
                Err(_) => write.write_all(&first).await,
                Ok(next) => {
                    buf.clear();
                    buf.extend_from_slice(&first);
                    buf.extend_from_slice(&next);
                    while buf.len() < COALESCE {
                        match rx.try_recv() {
                            Ok(more) => buf.extend_from_slice(&more),
                            Err(_) => break,
                        }
                    }
                    write.write_all(&buf).await
                }
            };
            if written.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    Ok(Conn {
        read,
        write: tx,
        writer,
        local,
    })
}

async fn read_conn(conn: &mut Option<Conn>, buf: &mut Vec<u8>) -> io::Result<usize> {
    match conn {
        Some(c) => {
            buf.clear();
            c.read.read_buf(buf).await
        }
        None => std::future::pending().await,
    }
}

/// Runs `session` until a [`PeerCommand::Shutdown`] or until the owner
/// drops its command sender or event receiver.
pub async fn run_peer<K: Clone + Send + 'static>(
    key: K,
    mut session: Session,
    transport: Transport,
    mut commands: mpsc::UnboundedReceiver<PeerCommand>,
    events: mpsc::Sender<PeerEvent<K>>,
    updates: Arc<dyn UpdateSource>,
) {
    let std_start = std::time::Instant::now();
    let tokio_start = Instant::now();
    let now = move || std_start + tokio_start.elapsed();
    let mut outbound: Option<Conn> = None;
    let mut inbound: Option<Conn> = None;
    let mut connecting: Option<tokio::task::JoinHandle<io::Result<TcpStream>>> = None;
    let mut buf_out = Vec::with_capacity(64 * 1024);
    let mut buf_in = Vec::with_capacity(64 * 1024);
    let mut exiting = false;
    let mut batch = Vec::with_capacity(LOW_WATER);

    loop {
        // Events first: they may close connections the transmits are for.
        while let Some(ev) = session.poll_event() {
            match ev {
                SessionEvent::Connect => {
                    if let Some(old) = connecting.take() {
                        old.abort();
                    }
                    connecting = Some(tokio::spawn(connect(transport.clone())));
                }
                SessionEvent::Close(id) => {
                    // Hand the writer everything left for this connection
                    // (the NOTIFICATION explaining the close among it), then
                    // drop our ends: the writer flushes and shuts down.
                    let conn = match id {
                        ConnId::Outbound => outbound.take(),
                        ConnId::Inbound => inbound.take(),
                    };
                    let pending = session.take_transmits_for(id);
                    if let Some(conn) = conn {
                        conn.close_after(pending).await;
                    }
                }
                other => {
                    let local = outbound.as_ref().or(inbound.as_ref()).and_then(|c| c.local);
                    let ev = PeerEvent {
                        peer: key.clone(),
                        local,
                        event: other,
                    };
                    if events.send(ev).await.is_err() {
                        return;
                    }
                }
            }
        }
        if exiting && session.queued_transmits() == 0 {
            for conn in [outbound.take(), inbound.take()].into_iter().flatten() {
                conn.close_after(Vec::new()).await;
            }
            return;
        }
        // Once established, a connect attempt still in flight can only
        // collide with the session (RFC 4271 §6.8): drop it.
        if session.state() == State::Established
            && let Some(attempt) = connecting.take()
        {
            attempt.abort();
        }

        let next_conn = session.next_transmit_conn();
        let writer = match next_conn {
            Some(ConnId::Outbound) => outbound.as_ref().map(|c| c.write.clone()),
            Some(ConnId::Inbound) => inbound.as_ref().map(|c| c.write.clone()),
            None => None,
        };
        if next_conn.is_some() && writer.is_none() {
            // The connection is gone; drop what was queued for it.
            let _ = session.poll_transmit(now());
            continue;
        }
        let want_updates =
            session.state() == State::Established && session.queued_transmits() < LOW_WATER;
        let deadline = session
            .poll_timeout()
            .map(|t| tokio_start + t.saturating_duration_since(std_start));

        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => return,
                Some(PeerCommand::Start) => session.handle_start(now()),
                Some(PeerCommand::Stop(n)) => session.handle_stop(now(), n),
                Some(PeerCommand::Shutdown(n)) => {
                    session.handle_stop(now(), n);
                    exiting = true;
                }
                // The connections close as they drop, without a NOTIFICATION.
                Some(PeerCommand::Abandon) => return,
                Some(PeerCommand::ClearRestartState) => {
                    let mut config = session.config().clone();
                    if let Some(gr) = config.graceful_restart.as_mut() {
                        gr.restarting = false;
                    }
                    session.set_config(config);
                }
                Some(PeerCommand::RouteRefresh(r)) => {
                    let _ = session.send_route_refresh(now(), r);
                }
                Some(PeerCommand::Inbound(stream)) => {
                    if inbound.is_some() {
                        continue;
                    }
                    match open_conn(stream, &transport) {
                        Ok(conn) => {
                            inbound = Some(conn);
                            session.handle_connected(now(), ConnId::Inbound);
                        }
                        Err(e) => tracing::warn!(peer = %transport.remote, "inbound connection setup failed: {e}"),
                    }
                }
            },
            res = async { connecting.as_mut().map(|h| h as &mut _).expect("guarded").await }, if connecting.is_some() => {
                connecting = None;
                match res {
                    Ok(Ok(stream)) => match open_conn(stream, &transport) {
                        Ok(conn) => {
                            outbound = Some(conn);
                            session.handle_connected(now(), ConnId::Outbound);
                        }
                        Err(_) => session.handle_connect_failed(now()),
                    },
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %transport.remote, "connect failed: {e}");
                        session.handle_connect_failed(now());
                    }
                    Err(_) => session.handle_connect_failed(now()),
                }
            }
            r = read_conn(&mut outbound, &mut buf_out) => match r {
                Ok(0) | Err(_) => {
                    outbound = None;
                    session.handle_closed(now(), ConnId::Outbound);
                }
                Ok(n) => session.handle_bytes(now(), ConnId::Outbound, buf_out.get(..n).unwrap_or_default()),
            },
            r = read_conn(&mut inbound, &mut buf_in) => match r {
                Ok(0) | Err(_) => {
                    inbound = None;
                    session.handle_closed(now(), ConnId::Inbound);
                }
                Ok(n) => session.handle_bytes(now(), ConnId::Inbound, buf_in.get(..n).unwrap_or_default()),
            },
            permit = async { writer.as_ref().expect("guarded").reserve().await }, if writer.is_some() => match permit {
                Ok(permit) => {
                    if let Some((_, bytes)) = session.poll_transmit(now()) {
                        permit.send(bytes);
                    }
                }
                Err(_) => {
                    if let Some(id) = next_conn {
                        match id {
                            ConnId::Outbound => outbound = None,
                            ConnId::Inbound => inbound = None,
                        }
                        session.handle_closed(now(), id);
                    }
                }
            },
            () = updates.signal().wait(), if want_updates => {
                batch.clear();
                let more = updates.take(LOW_WATER, &mut batch);
                let t = now();
                for bytes in batch.drain(..) {
                    if let Err(e) = session.send_encoded(t, bytes) {
                        tracing::warn!(peer = %transport.remote, "cannot send an UPDATE: {e}");
                    }
                }
                if more {
                    updates.signal().raise();
                }
            }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                session.handle_timeout(now());
            }
        }
    }
}
