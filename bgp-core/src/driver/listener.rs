//! The BGP listener: binds, sets the TCP-MD5 keys peers connect with, and
//! hands accepted connections to the speaker task.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::IpNetwork;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::sys;

/// Binds the listener (dual-stack for `::`), with TTL 255 so GTSM peers
/// accept our handshake.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        socket2::SockRef::from(&socket).set_only_v6(false)?;
    }
    let _ = sys::set_max_ttl(&socket, false);
    let _ = sys::set_max_ttl(&socket, addr.is_ipv6());
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Whether the listener sees IPv4 peers as IPv4-mapped IPv6 addresses.
fn dual_stack(listener: &TcpListener) -> bool {
    listener.local_addr().is_ok_and(|a| a.is_ipv6())
}

/// Sets (`Some`) or removes (`None`) the TCP-MD5 key the listener accepts
/// `peer`'s connections with.
pub(crate) fn set_key(
    listener: &TcpListener,
    peer: IpAddr,
    key: Option<&str>,
) -> std::io::Result<()> {
    let on_listener = match peer {
        IpAddr::V4(v4) if dual_stack(listener) => IpAddr::V6(v4.to_ipv6_mapped()),
        ip => ip,
    };
    sys::set_tcp_md5(
        listener,
        SocketAddr::new(on_listener, 0),
        key.unwrap_or_default().as_bytes(),
    )
}

/// Sets the TCP-MD5 key for every connection from `range`.
pub(crate) fn set_range_key(
    listener: &TcpListener,
    range: IpNetwork,
    key: &str,
) -> std::io::Result<()> {
    let (addr, len) = match range {
        // A dual-stack listener matches IPv4 peers as ::ffff:a.b.c.d.
        IpNetwork::V4(v4) if dual_stack(listener) => (
            IpAddr::V6(v4.network().to_ipv6_mapped()),
            v4.prefix().saturating_add(96),
        ),
        IpNetwork::V4(v4) => (IpAddr::V4(v4.network()), v4.prefix()),
        IpNetwork::V6(v6) => (IpAddr::V6(v6.network()), v6.prefix()),
    };
    sys::set_tcp_md5_prefix(listener, addr, len, key.as_bytes())
}

/// Accepts connections forever, passing each on; ends when the receiver
/// is gone.
pub(crate) async fn accept_loop(
    listener: Arc<TcpListener>,
    to_speaker: mpsc::Sender<(TcpStream, SocketAddr)>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                if to_speaker.send((stream, from)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // Out of descriptors, mostly: wait rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
