//! The kernel tunnel's IPIP filter ([`ipip::filter`]) on the running
//! kernel's nf_tables, in namespaces of the test's own (root required):
//!
//! ```text
//! ns F (filtered host)                 ns S (senders)
//! ipf-host 10.97.0.1/24 ──────────────────── ipf-send 10.97.0.2/24 (a node), 10.97.0.3/24 (no node)
//! raw IP-protocol-4 socket                raw socket, IPIP with either source
//! ```
//!
//! A raw protocol-4 socket receives IPIP after the input hook, as the
//! kernel's ipip module does (it works without that module, which this
//! machine's kernel lacks; `tests/vm.rs` runs the same filter in front of
//! the real module on a stock kernel). Both namespaces belong to threads
//! that `unshare` them: they end with the threads, on every path.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ipip::filter::{self, Installed, IpipFilter};
use ipip::packet::{Tunnel, decapsulate, encapsulate};
use netlink::consts::NF_ACCEPT;
use netlink::nftables::{Hook, Nftables, Request};
use socket2::{SockAddr, Socket};

const HOST: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 1);
const NODE: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 2);
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 3);

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// This thread's id, which `ip link set … netns` takes as a pid.
fn thread_id() -> String {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .expect("…/task/TID")
        .to_string_lossy()
        .into_owned()
}

/// An IPv4/UDP datagram from a pod to a pod, inside the tunnel.
fn inner(tag: u8) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&[10, 244, 2, 7, 10, 244, 1, 5]);
    p.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, 0, 9, 0, 0, tag]);
    let len = u16::try_from(p.len()).unwrap().to_be_bytes();
    p[2..4].copy_from_slice(&len);
    let sum = ipip::packet::checksum(&p[..20]).to_be_bytes();
    p[10..12].copy_from_slice(&sum);
    p
}

/// The sending side: a thread alone in namespace S, sending IPIP to the
/// host with the outer source it is asked for.
struct Senders {
    jobs: mpsc::Sender<(Ipv4Addr, u8)>,
    sent: mpsc::Receiver<()>,
}

impl Senders {
    /// Starts S, joined to the calling thread's namespace (F) by a veth
    /// pair, and configures both ends.
    fn start() -> Senders {
        let host_tid = thread_id();
        let (jobs, job_rx) = mpsc::channel::<(Ipv4Addr, u8)>();
        let (sent_tx, sent) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        thread::spawn(move || {
            ipip::sys::unshare_net().expect("unshare(CLONE_NEWNET): root is needed");
            ip(&[
                "link", "add", "ipf-send", "type", "veth", "peer", "name", "ipf-host", "netns",
                &host_tid,
            ]);
            ip(&["addr", "add", "10.97.0.2/24", "dev", "ipf-send"]);
            ip(&["addr", "add", "10.97.0.3/24", "dev", "ipf-send"]);
            ip(&["link", "set", "ipf-send", "up"]);
            let sock = ipip::sys::raw_ipip_socket(NODE).expect("raw socket in S");
            ready_tx.send(()).unwrap();
            let mut out = Vec::new();
            while let Ok((source, tag)) = job_rx.recv() {
                let tunnel = Tunnel {
                    local: source,
                    mtu: 1500,
                    ttl: 64,
                    forwarding: false,
                };
                encapsulate(&inner(tag), HOST, &tunnel, u16::from(tag), &mut out).unwrap();
                let to = SockAddr::from(SocketAddrV4::new(HOST, 0));
                // Non-blocking; the queue is empty at these rates.
                sock.send_to(&out, &to).expect("send IPIP");
                sent_tx.send(()).unwrap();
            }
        });
        ready.recv().expect("namespace S set up");
        ip(&["addr", "add", "10.97.0.1/24", "dev", "ipf-host"]);
        ip(&["link", "set", "ipf-host", "up"]);
        ip(&["link", "set", "lo", "up"]);
        Senders { jobs, sent }
    }

    /// Sends one IPIP packet from `source`, tagged `tag`.
    fn send(&self, source: Ipv4Addr, tag: u8) {
        self.jobs.send((source, tag)).unwrap();
        self.sent.recv().expect("sender thread alive");
    }
}

/// The receiving side: a raw protocol-4 socket in F.
struct Receiver {
    sock: Socket,
}

impl Receiver {
    /// Waits until the packet tagged `tag` arrives; returns the outer
    /// sources of every packet received before and with it.
    fn until(&self, tag: u8) -> Vec<(Ipv4Addr, u8)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            match (&self.sock).read(&mut buf) {
                Ok(n) => {
                    let d = decapsulate(&buf[..n]).expect("an IPIP packet");
                    let got_tag = *d.inner.last().unwrap();
                    got.push((d.outer_src, got_tag));
                    if got_tag == tag {
                        return got;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "packet {tag} never arrived; got {got:?}"
                    );
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
}

fn nodes(addresses: &[Ipv4Addr]) -> BTreeSet<Ipv4Addr> {
    addresses.iter().copied().collect()
}

/// The filter's one rule's handle: the same handle means the rule was not
/// rewritten.
fn rule_handle() -> u64 {
    let mut nft = Nftables::open().unwrap();
    let rules = nft
        .rules(filter::FAMILY, filter::TABLE, filter::CHAIN)
        .unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    rules[0].handle
}

#[test]
fn ipip_from_a_non_node_is_dropped_and_counted_and_the_set_follows_the_nodes() {
    common::require_root("the IPIP filter test creates network namespaces and nftables tables and");
    let result = thread::spawn(|| {
        ipip::sys::unshare_net().expect("unshare(CLONE_NEWNET): root is needed");
        let senders = Senders::start();
        let receiver = Receiver {
            sock: ipip::sys::raw_ipip_socket(HOST).expect("raw socket in F"),
        };

        // Without a filter the host takes IPIP from anyone: the hole.
        senders.send(STRANGER, 1);
        assert_eq!(receiver.until(1), [(STRANGER, 1)]);

        let mut f = IpipFilter::open().expect("NETLINK_NETFILTER socket");
        assert_eq!(f.dropped().unwrap(), None, "no filter yet");
        let applied = f.apply(&nodes(&[NODE])).expect("install the filter");
        assert_eq!(
            (applied.installed, applied.added, applied.removed),
            (Installed::Created, 1, 0)
        );
        assert_eq!(f.nodes().unwrap(), nodes(&[NODE]));
        let handle = rule_handle();

        // Three from the stranger, then one from the node: the node's
        // arrives alone (the stranger's, sent first on the same path,
        // would be ahead of it) and the three are counted.
        for tag in 2..5 {
            senders.send(STRANGER, tag);
        }
        senders.send(NODE, 5);
        assert_eq!(receiver.until(5), [(NODE, 5)]);
        let dropped = f.dropped().unwrap().expect("the counter");
        assert_eq!(dropped.packets, 3);
        assert!(dropped.bytes >= 3 * 40, "{dropped:?}");

        // The stranger becomes a node: one element added, the rule and
        // its counter untouched.
        let applied = f.apply(&nodes(&[NODE, STRANGER])).unwrap();
        assert_eq!(
            (applied.installed, applied.added, applied.removed),
            (Installed::Adopted, 1, 0)
        );
        assert_eq!(rule_handle(), handle, "the rule was not rewritten");
        senders.send(STRANGER, 6);
        assert_eq!(receiver.until(6), [(STRANGER, 6)]);

        // The first node leaves: one element removed, its IPIP dropped.
        let applied = f.apply(&nodes(&[STRANGER])).unwrap();
        assert_eq!((applied.added, applied.removed), (0, 1));
        senders.send(NODE, 7);
        senders.send(STRANGER, 8);
        assert_eq!(receiver.until(8), [(STRANGER, 8)]);
        assert_eq!(f.dropped().unwrap().unwrap().packets, 4);

        // A fresh handle (a restarted agent) adopts the table and its
        // count.
        let mut again = IpipFilter::open().unwrap();
        let applied = again.apply(&nodes(&[STRANGER])).unwrap();
        assert_eq!(
            (applied.installed, applied.added, applied.removed),
            (Installed::Adopted, 0, 0)
        );
        assert_eq!(again.dropped().unwrap().unwrap().packets, 4);

        // Removed: IPIP from anyone again, and nothing of ours is left.
        assert!(again.remove().unwrap());
        assert!(!again.remove().unwrap(), "removing twice is no error");
        assert_eq!(again.dropped().unwrap(), None);
        senders.send(NODE, 9);
        assert_eq!(receiver.until(9), [(NODE, 9)]);
    })
    .join();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_table_of_our_name_that_is_not_ours_is_replaced_in_one_transaction() {
    common::require_root("the IPIP filter test creates network namespaces and nftables tables and");
    let result = thread::spawn(|| {
        ipip::sys::unshare_net().expect("unshare(CLONE_NEWNET): root is needed");
        // Someone else's `table ip podroute` with a chain of theirs.
        let mut nft = Nftables::open().unwrap();
        nft.transaction(&[
            Request::new_table(filter::FAMILY, filter::TABLE),
            Request::new_filter_chain(
                filter::FAMILY,
                filter::TABLE,
                "theirs",
                Hook::INPUT,
                NF_ACCEPT,
            ),
        ])
        .expect("a foreign table");
        let mut f = IpipFilter::open().unwrap();
        let applied = f.apply(&nodes(&[NODE])).unwrap();
        assert_eq!(applied.installed, Installed::Replaced);
        assert!(
            applied
                .replaced
                .as_deref()
                .unwrap_or_default()
                .contains("theirs"),
            "{applied:?}"
        );
        let chains = nft.chains(filter::FAMILY, filter::TABLE).unwrap();
        assert_eq!(
            chains.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            [filter::CHAIN]
        );
        assert_eq!(f.nodes().unwrap(), nodes(&[NODE]));
        assert_eq!(f.dropped().unwrap().unwrap().packets, 0);
        // The second time it is ours.
        assert_eq!(
            f.apply(&nodes(&[NODE])).unwrap().installed,
            Installed::Adopted
        );
    })
    .join();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
