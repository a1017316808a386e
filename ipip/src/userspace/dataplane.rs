//! Starting and stopping the data plane: the TUN device, the raw socket,
//! and the forwarding thread (`park.rs`, driving `egress.rs` and `ingress.rs`).

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use super::counters::Counters;
use super::egress::Egress;
use super::gro::GroDevice;
use super::ingress::Ingress;
use super::limits::TUN_TX_QUEUE_LEN;
use super::park::Forwarder;
use super::routes::{RouteLearner, SharedTable};
use super::table::TunnelTable;
use crate::packet::{DEFAULT_OUTER_TTL, OUTER_HEADER_LEN, Tunnel};
use crate::sys;

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
    /// With offloads, send the segments of TCP super-packets through a
    /// GRO device (`tunl0-gro`, see [`super::gro`]) so the kernel forwards
    /// each super-packet whole instead of segment by segment. Falls back to
    /// the raw socket, with the reason in [`Dataplane::egress`], when the
    /// host cannot take it.
    pub gro_egress: bool,
}

/// How outer datagrams leave the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressPath {
    /// Bulk TCP through the named GRO device, the rest on the raw socket.
    Gro(String),
    /// Everything on the raw socket, for the reason given.
    Raw(String),
}

impl std::fmt::Display for EgressPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EgressPath::Gro(device) => write!(f, "gro via {device}"),
            EgressPath::Raw(why) => write!(f, "raw socket ({why})"),
        }
    }
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

/// A running data plane: a forwarding thread (both directions) and a
/// route-learning thread. Dropping it stops forwarding within a tenth of
/// a second (the TUN device goes away with the last handle to
/// it).
pub struct Dataplane {
    counters: Arc<Counters>,
    egress: EgressPath,
    stop: Arc<AtomicBool>,
    done: mpsc::UnboundedReceiver<io::Result<()>>,
}

/// Reports the forwarding thread's end, also when it panics.
struct Report {
    tx: mpsc::UnboundedSender<io::Result<()>>,
    result: Option<io::Result<()>>,
}

impl Drop for Report {
    fn drop(&mut self) {
        let r = self
            .result
            .take()
            .unwrap_or_else(|| Err(io::Error::other("forwarding thread panicked")));
        let _ = self.tx.send(r);
    }
}

fn spawn_loop(
    name: &str,
    tx: &mpsc::UnboundedSender<io::Result<()>>,
    body: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> io::Result<()> {
    let report = Report {
        tx: tx.clone(),
        result: None,
    };
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            // The whole guard moves in, so it reports when this thread
            // ends, however it ends.
            let mut report = report;
            report.result = Some(body());
        })
        .map(|_| ())
}

impl Dataplane {
    /// Creates the TUN device, brings it up, opens the raw socket, loads the
    /// tunnel table and starts forwarding on a thread of its own.
    /// [`Dataplane::wait`] needs a tokio runtime; starting does not.
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

        let (gro, egress) = if !config.offload {
            (None, EgressPath::Raw("offloads off".into()))
        } else if !config.gro_egress {
            (None, EgressPath::Raw("GRO egress off".into()))
        } else {
            match GroDevice::open(&config.device) {
                Ok(d) => {
                    let path = EgressPath::Gro(d.name().to_string());
                    (Some(d), path)
                }
                Err(e) => (
                    None,
                    EgressPath::Raw(format!("GRO egress unavailable: {e}")),
                ),
            }
        };

        let tun = Arc::new(tun);
        let sock = Arc::new(sock);
        let stop = Arc::new(AtomicBool::new(false));
        let tunnel = Tunnel {
            local: config.local,
            mtu: config.mtu,
            ttl: DEFAULT_OUTER_TTL,
            // The kernel already decremented the TTL routing into the TUN.
            forwarding: false,
        };
        let forwarder = Forwarder {
            egress: Egress::new(
                tun.clone(),
                sock.clone(),
                tunnel,
                config.offload,
                counters.clone(),
                stop.clone(),
                gro,
            ),
            ingress: Ingress::new(
                tun.clone(),
                sock.clone(),
                config.offload,
                usize::from(config.mtu).saturating_sub(OUTER_HEADER_LEN),
                counters.clone(),
            ),
            tun,
            sock,
            table,
            stop: stop.clone(),
        };
        let (tx, done) = mpsc::unbounded_channel();
        spawn_loop("ipip-forward", &tx, move || forwarder.run())?;
        Ok(Dataplane {
            counters,
            egress,
            stop,
            done,
        })
    }

    /// How outer datagrams leave: through the GRO device, or on the raw
    /// socket alone and why.
    pub fn egress(&self) -> &EgressPath {
        &self.egress
    }

    /// The live counters.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Waits until forwarding fails (it does not end otherwise).
    pub async fn wait(&mut self) -> Result<(), Error> {
        match self.done.recv().await {
            Some(r) => r.map_err(Error::Io),
            None => Err(Error::Io(io::Error::other("forwarding thread gone"))),
        }
    }

    /// Forwards until SIGTERM or SIGINT (`Ok`) or until forwarding fails;
    /// on SIGUSR1, and once at the end, hands the counters to `report`.
    /// The body of a tunnel process (`ipip-tunnel`, `route-agent tunnel`).
    pub async fn run_until_signal(&mut self, report: impl Fn(&Counters)) -> Result<(), Error> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let counters = self.counters();
        let result = loop {
            tokio::select! {
                _ = term.recv() => break Ok(()),
                _ = int.recv() => break Ok(()),
                _ = usr1.recv() => report(&counters),
                r = self.wait() => break r,
            }
        };
        report(&counters);
        result
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
