//! The tokio driver over real TCP on loopback: sessions establish, carry
//! UPDATEs, and TCP-MD5 / GTSM options are applied.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgp_core::driver::{PeerCommand, PeerEvent, Transport, UpdateSource, run_peer};
use bgp_core::engine::Signal;
use bgp_core::session::{Session, SessionConfig, SessionEvent, State};
use bgp_core::speaker::Password;
use bgp_core::wire::{DecodeContext, Family, Message, Update};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Encoded UPDATEs waiting to be sent.
#[derive(Default)]
struct Queue {
    items: Mutex<Vec<Bytes>>,
    signal: Signal,
}

impl UpdateSource for Queue {
    fn take(&self, max: usize, out: &mut Vec<Bytes>) -> bool {
        let mut items = self.items.lock().unwrap();
        let n = items.len().min(max);
        out.extend(items.drain(..n));
        !items.is_empty()
    }
    fn signal(&self) -> &Signal {
        &self.signal
    }
}

struct Peer {
    commands: mpsc::UnboundedSender<PeerCommand>,
    events: mpsc::Receiver<PeerEvent<&'static str>>,
    queue: Arc<Queue>,
}

fn spawn(name: &'static str, config: SessionConfig, transport: Transport) -> Peer {
    let (ctx, crx) = mpsc::unbounded_channel();
    let (etx, erx) = mpsc::channel(64);
    let queue = Arc::new(Queue::default());
    let source: Arc<dyn UpdateSource> = queue.clone();
    tokio::spawn(run_peer(
        name,
        Session::new(config, 7),
        transport,
        crx,
        etx,
        source,
    ));
    Peer {
        commands: ctx,
        events: erx,
        queue,
    }
}

async fn wait_for(peer: &mut Peer, mut want: impl FnMut(&SessionEvent) -> bool) -> SessionEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, peer.events.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("peer task ended");
        if want(&ev.event) {
            return ev.event;
        }
    }
}

/// A listens on 127.0.0.1:port (passive, accepts by hand), B connects from
/// 127.0.0.2.
async fn pair(
    md5: (Option<&str>, Option<&str>),
    ttl: (Option<u8>, Option<u8>),
) -> (Peer, Peer, u16) {
    let a_ip = Ipv4Addr::new(127, 0, 0, 1);
    let b_ip = Ipv4Addr::new(127, 0, 0, 2);
    let listener = TcpListener::bind((a_ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    bgp_core::driver::sys::set_max_ttl(&listener, false).unwrap();
    if let Some(key) = md5.0 {
        bgp_core::driver::sys::set_tcp_md5(
            &listener,
            SocketAddr::new(IpAddr::V4(b_ip), 0),
            key.as_bytes(),
        )
        .unwrap();
    }
    let mut a_cfg = SessionConfig::new(65001, a_ip, 65001);
    a_cfg.passive = true;
    let b_cfg = SessionConfig::new(65001, b_ip, 65001);
    let mut a_t = Transport::new(SocketAddr::new(IpAddr::V4(b_ip), port));
    a_t.md5_key = md5.0.map(Password::from);
    a_t.ttl_security = ttl.0;
    let mut b_t = Transport::new(SocketAddr::new(IpAddr::V4(a_ip), port));
    b_t.local = Some(IpAddr::V4(b_ip));
    b_t.md5_key = md5.1.map(Password::from);
    b_t.ttl_security = ttl.1;
    let a = spawn("a", a_cfg, a_t);
    let b = spawn("b", b_cfg, b_t);
    let a_commands = a.commands.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = a_commands.send(PeerCommand::Inbound(stream));
        }
    });
    a.commands.send(PeerCommand::Start).unwrap();
    b.commands.send(PeerCommand::Start).unwrap();
    (a, b, port)
}

fn established(e: &SessionEvent) -> bool {
    matches!(
        e,
        SessionEvent::StateChanged {
            to: State::Established,
            ..
        }
    )
}

#[tokio::test]
async fn sessions_establish_over_tcp_and_carry_updates() {
    let (mut a, mut b, _) = pair((None, None), (None, None)).await;
    wait_for(&mut a, established).await;
    wait_for(&mut b, established).await;
    let eor = Message::Update(Update::end_of_rib_marker(Family::Ipv6Unicast));
    let bytes = eor.to_bytes(&DecodeContext::ibgp()).unwrap();
    b.queue.items.lock().unwrap().push(Bytes::from(bytes));
    b.queue.signal.raise();
    let ev = wait_for(&mut a, |e| matches!(e, SessionEvent::Update(_))).await;
    let SessionEvent::Update(u) = ev else {
        unreachable!()
    };
    assert_eq!(u.update.end_of_rib(), Some((2, 1)));
}

#[tokio::test]
async fn matching_md5_keys_establish() {
    let (mut a, mut b, _) = pair((Some("s3cret"), Some("s3cret")), (None, None)).await;
    wait_for(&mut a, established).await;
    wait_for(&mut b, established).await;
}

#[tokio::test]
async fn mismatched_md5_keys_never_establish() {
    let (mut a, _b, _) = pair((Some("s3cret"), Some("wrong")), (None, None)).await;
    let r = tokio::time::timeout(Duration::from_secs(3), wait_for(&mut a, established)).await;
    assert!(r.is_err(), "a session with mismatched TCP-MD5 keys came up");
}

#[tokio::test]
async fn ttl_security_on_both_sides_establishes() {
    let (mut a, mut b, _) = pair((None, None), (Some(1), Some(1))).await;
    wait_for(&mut a, established).await;
    wait_for(&mut b, established).await;
}

#[tokio::test]
async fn ttl_security_refuses_a_peer_that_sends_with_a_low_ttl() {
    // B does not set TTL 255, so its packets arrive with TTL 64 < 255.
    let (mut a, _b, _) = pair((None, None), (Some(1), None)).await;
    let r = tokio::time::timeout(Duration::from_secs(3), wait_for(&mut a, established)).await;
    assert!(r.is_err(), "GTSM let a TTL-64 peer in");
}

#[tokio::test]
async fn admin_stop_reaches_the_peer_as_a_shutdown_notification() {
    let (mut a, mut b, _) = pair((None, None), (None, None)).await;
    wait_for(&mut a, established).await;
    wait_for(&mut b, established).await;
    b.commands
        .send(PeerCommand::Stop(
            bgp_core::wire::Notification::admin_shutdown("bye"),
        ))
        .unwrap();
    let ev = wait_for(&mut a, |e| matches!(e, SessionEvent::Down(_))).await;
    let SessionEvent::Down(bgp_core::session::DownReason::NotificationReceived(n)) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(n.shutdown_communication(), Some("bye"));
}
