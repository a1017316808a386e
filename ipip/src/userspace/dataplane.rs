//! The two forwarding loops, on tokio.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, RwLock};

use socket2::{SockAddr, Socket};
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use super::counters::{Counters, DropReason};
use super::routes::{RouteLearner, SharedTable};
use super::table::TunnelTable;
use crate::packet::{
    DEFAULT_OUTER_TTL, Encapsulated, Ipv4Header, OUTER_HEADER_LEN, Tunnel, decapsulate, encapsulate,
};
use crate::sys;

/// Packets handled per wake-up in each direction before yielding.
pub const BATCH: usize = 64;

/// What the data plane needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// TUN device name; `tunl0` so routes read as with kernel IPIP.
    pub device: String,
    /// This node's underlay address: outer source, and where peers send.
    pub local: Ipv4Addr,
    /// Underlay MTU: the largest outer datagram sent unfragmented. Inner
    /// datagrams with DF that do not fit in `mtu - 20` get an ICMP
    /// fragmentation-needed.
    pub mtu: u16,
    /// Peers accepted on top of the gateways of tunnel routes.
    pub extra_peers: Vec<Ipv4Addr>,
}

/// Why the data plane could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/dev/net/tun` could not be opened or TUNSETIFF failed.
    #[error("cannot open TUN device {device}: {source} (needs CAP_NET_ADMIN and /dev/net/tun)")]
    Tun {
        /// The device name.
        device: String,
        /// The OS error.
        source: io::Error,
    },
    /// The raw IP-protocol-4 socket could not be opened or bound.
    #[error(
        "cannot open raw IPIP socket on {local}: {source} (needs CAP_NET_RAW and {local} assigned locally)"
    )]
    RawSocket {
        /// The local address.
        local: Ipv4Addr,
        /// The OS error.
        source: io::Error,
    },
    /// Setting up the device (link up, interface index) failed.
    #[error("cannot configure {device}: {source}")]
    Device {
        /// The device name.
        device: String,
        /// The OS error.
        source: io::Error,
    },
    /// Dumping or following the kernel's routes failed.
    #[error("cannot learn tunnel routes over netlink: {0}")]
    Netlink(io::Error),
    /// A forwarding loop hit an I/O error it cannot continue past.
    #[error("data plane I/O: {0}")]
    Io(#[from] io::Error),
}

/// A running data plane: two tokio tasks and a route-learning thread.
/// Dropping it stops the forwarding tasks (the TUN device goes away with
/// the last handle to it).
pub struct Dataplane {
    counters: Arc<Counters>,
    egress: JoinHandle<io::Result<()>>,
    ingress: JoinHandle<io::Result<()>>,
}

impl Dataplane {
    /// Creates the TUN device, brings it up, opens the raw socket, loads the
    /// tunnel table and starts forwarding. Must run inside a tokio runtime.
    ///
    /// The device's own MTU is left as the kernel made it (1500); whoever
    /// manages it (Calico: underlay MTU − 20) sets it with `ip link set`.
    pub fn start(config: Config) -> Result<Dataplane, Error> {
        let device = config.device.clone();
        let dev_err = |source| Error::Device {
            device: device.clone(),
            source,
        };
        let tun = sys::open_tun(&config.device).map_err(|source| Error::Tun {
            device: device.clone(),
            source,
        })?;
        sys::set_link_up(&config.device).map_err(dev_err)?;
        let ifindex = sys::if_index(&config.device).map_err(dev_err)?;
        let sock = sys::raw_ipip_socket(config.local).map_err(|source| Error::RawSocket {
            local: config.local,
            source,
        })?;

        let counters = Arc::new(Counters::default());
        let table: SharedTable = Arc::new(RwLock::new(Arc::new(TunnelTable::default())));
        RouteLearner::new(ifindex, config.extra_peers.clone())
            .and_then(|l| l.spawn(table.clone(), counters.clone()))
            .map_err(Error::Netlink)?;

        let tun = Arc::new(sys::async_tun(tun)?);
        let sock = Arc::new(sys::async_socket(sock)?);
        let tunnel = Tunnel {
            local: config.local,
            mtu: config.mtu,
            ttl: DEFAULT_OUTER_TTL,
            // The kernel already decremented the TTL routing into the TUN.
            forwarding: false,
        };
        let egress = tokio::spawn(egress(
            tun.clone(),
            sock.clone(),
            table.clone(),
            tunnel,
            counters.clone(),
        ));
        let ingress = tokio::spawn(ingress(tun, sock, table, counters.clone()));
        Ok(Dataplane {
            counters,
            egress,
            ingress,
        })
    }

    /// The live counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Waits until a forwarding loop fails (they do not end otherwise).
    pub async fn wait(&mut self) -> Result<(), Error> {
        let result = tokio::select! {
            r = &mut self.egress => r,
            r = &mut self.ingress => r,
        };
        match result {
            Ok(r) => r.map_err(Error::Io),
            Err(join) => Err(Error::Io(io::Error::other(join))),
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.egress.abort();
        self.ingress.abort();
    }
}

fn snapshot(table: &SharedTable) -> Arc<TunnelTable> {
    match table.read() {
        Ok(t) => t.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Sends one outer datagram, waiting for room if the socket buffer is full.
async fn send_outer(sock: &AsyncFd<Socket>, bytes: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
    let addr = SockAddr::from(SocketAddrV4::new(dst, 0));
    loop {
        let mut guard = sock.writable().await?;
        if let Ok(r) = guard.try_io(|s| s.get_ref().send_to(bytes, &addr)) {
            return r;
        }
    }
}

fn write_tun(tun: &AsyncFd<File>, bytes: &[u8]) -> io::Result<usize> {
    tun.get_ref().write(bytes)
}

async fn egress(
    tun: Arc<AsyncFd<File>>,
    sock: Arc<AsyncFd<Socket>>,
    table: SharedTable,
    tunnel: Tunnel,
    counters: Arc<Counters>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(65_536 + OUTER_HEADER_LEN);
    let mut id: u16 = 0;
    loop {
        let mut guard = tun.readable().await?;
        let table = snapshot(&table);
        for _ in 0..BATCH {
            let n = match guard.try_io(|t| t.get_ref().read(&mut buf)) {
                Ok(r) => r?,
                Err(_would_block) => break,
            };
            let inner = buf.get(..n).unwrap_or_default();
            if inner.first().is_none_or(|b| b >> 4 != 4) {
                counters.count_drop(DropReason::NotIpv4);
                continue;
            }
            let Ok(header) = Ipv4Header::parse(inner) else {
                counters.count_drop(DropReason::BadInner);
                continue;
            };
            let Some(remote) = table.lookup(header.dst()) else {
                counters.count_drop(DropReason::NoRoute);
                continue;
            };
            id = id.wrapping_add(1);
            let sent = match encapsulate(inner, remote, &tunnel, id, &mut out) {
                Err(_) => {
                    counters.count_drop(DropReason::BadInner);
                    continue;
                }
                Ok(Encapsulated::Packet) => send_outer(&sock, &out, remote).await.map(|_| ()),
                Ok(Encapsulated::Fragments(ranges)) => {
                    let mut r = Ok(());
                    for range in ranges {
                        let frag = out.get(range).unwrap_or_default();
                        r = r.and(send_outer(&sock, frag, remote).await.map(|_| ()));
                    }
                    r
                }
                Ok(Encapsulated::FragmentationNeeded | Encapsulated::TimeExceeded) => {
                    // RFC 2003 §5.1: the reply goes back to the inner source.
                    // It is sent as a locally originated datagram (the raw
                    // socket takes whole headers, whatever the protocol), not
                    // written into the TUN device: arriving there from the
                    // node's own address it would be dropped as a martian
                    // unless accept_local were set.
                    match send_outer(&sock, &out, header.src()).await {
                        Ok(_) => Counters::add(&counters.icmp_frag_needed, 1),
                        Err(_) => counters.count_drop(DropReason::SendFailed),
                    }
                    continue;
                }
            };
            match sent {
                Ok(()) => {
                    Counters::add(&counters.tx_packets, 1);
                    Counters::add(&counters.tx_bytes, n);
                }
                Err(_) => counters.count_drop(DropReason::SendFailed),
            }
        }
    }
}

async fn ingress(
    tun: Arc<AsyncFd<File>>,
    sock: Arc<AsyncFd<Socket>>,
    table: SharedTable,
    counters: Arc<Counters>,
) -> io::Result<()> {
    // One recvmmsg fills up to BATCH buffers; each holds the largest IPv4
    // datagram, as the kernel reassembles fragmented outer datagrams.
    let mut bufs = vec![vec![0u8; 65_535]; BATCH];
    let mut lens = vec![0usize; BATCH];
    loop {
        let mut guard = sock.readable().await?;
        let table = snapshot(&table);
        let n = match guard.try_io(|s| sys::recv_batch(s.get_ref(), &mut bufs, &mut lens)) {
            Ok(Ok(n)) => n,
            // One bad receive is no reason to stop forwarding.
            Ok(Err(_)) => {
                Counters::add(&counters.socket_errors, 1);
                continue;
            }
            Err(_would_block) => continue,
        };
        for (buf, len) in bufs.iter().zip(&lens).take(n) {
            let Some(outer) = buf.get(..*len) else {
                // Truncated: longer than any IPv4 datagram can be.
                counters.count_drop(DropReason::BadOuter);
                continue;
            };
            // The peer check comes first: nothing from a stranger is parsed
            // further, and its drops are counted under their own name.
            let Ok(header) = Ipv4Header::parse(outer) else {
                counters.count_drop(DropReason::BadOuter);
                continue;
            };
            if !table.is_peer(header.src()) {
                counters.count_drop(DropReason::UnknownPeer);
                continue;
            }
            let Ok(d) = decapsulate(outer) else {
                counters.count_drop(DropReason::BadOuter);
                continue;
            };
            match write_tun(&tun, d.inner) {
                Ok(_) => {
                    Counters::add(&counters.rx_packets, 1);
                    Counters::add(&counters.rx_bytes, d.inner.len());
                }
                Err(_) => counters.count_drop(DropReason::TunWriteFailed),
            }
        }
    }
}
