//! The two forwarding loops, on tokio.

use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::counters::Counters;
use super::egress::Egress;
use super::ingress::Ingress;
use super::routes::{RouteLearner, SharedTable};
use super::table::TunnelTable;
use crate::packet::{DEFAULT_OUTER_TTL, Tunnel};
use crate::sys;

/// Outer datagrams received per `recvmmsg` (ingress), and reads from the
/// TUN device per wake-up (egress), before yielding.
pub const BATCH: usize = 128;

/// Transmit queue of the TUN device: packets the kernel holds for the
/// data plane to read. The kernel's default for TUN (500) overflowed
/// under one TCP stream without offloads, and each drop is a TCP
/// retransmit.
pub const TUN_TX_QUEUE_LEN: u32 = 2000;

/// How long a loop keeps polling without blocking after its last packet
/// before it parks in epoll: waking a parked thread costs tens of
/// microseconds on a busy 2-core machine, more than a short spin. Idle
/// loops do not spin.
pub(super) const SPIN: Duration = Duration::from_micros(50);

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
    /// Use TUN offloads (`IFF_VNET_HDR`, TSO4 and checksum offload): the
    /// kernel hands out TCP super-packets of up to 64 KB that the data
    /// plane cuts to the tunnel MTU, and received TCP segments are
    /// coalesced into super-packets before they are written. Off: one
    /// plain packet per read and write.
    pub offload: bool,
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
        let tun = if config.offload {
            sys::open_tun_offload(&config.device)
        } else {
            sys::open_tun(&config.device)
        }
        .map_err(|source| Error::Tun {
            device: device.clone(),
            source,
        })?;
        sys::set_tx_queue_len(&config.device, TUN_TX_QUEUE_LEN).map_err(dev_err)?;
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
        let egress = tokio::spawn(
            Egress {
                tun: tun.clone(),
                sock: sock.clone(),
                table: table.clone(),
                tunnel,
                offload: config.offload,
                counters: counters.clone(),
            }
            .run(),
        );
        let ingress = tokio::spawn(
            Ingress {
                tun,
                sock,
                table,
                offload: config.offload,
                counters: counters.clone(),
            }
            .run(),
        );
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

/// The tunnel table as it is now (the route learner swaps in new ones).
pub(super) fn snapshot(table: &SharedTable) -> Arc<TunnelTable> {
    match table.read() {
        Ok(t) => t.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}
