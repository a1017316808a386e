//! What can be wrong with a config file, each error saying where and how
//! to fix it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnetwork::IpNetwork;

use crate::planner::IpipMode;

/// A config file that cannot be used.
///
/// Display: `FILE:LINE:COL: what is wrong — how to fix` for parse errors,
/// `FILE: what is wrong — how to fix` (one line per problem) for semantic
/// ones.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source} — check the path and its permissions", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid YAML, or not the config's shape.
    #[error("{}{}: {message} — {hint}", file.display(), location(*line, *column))]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// 1-based column, when the parser knows it.
        column: Option<usize>,
        /// What is wrong (with the YAML path, e.g. `pools[0].cidr: ...`).
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// Well-formed, but inconsistent or unsafe.
    #[error("{}", Lines(file, problems))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Every problem found, in file order of the sections.
        problems: Vec<Problem>,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

struct Lines<'a>(&'a PathBuf, &'a Vec<Problem>);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.1.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {p}", self.0.display())?;
        }
        Ok(())
    }
}

/// Which peer list an address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerList {
    /// `mesh.peers`.
    Mesh,
    /// `peers`.
    Explicit,
}

impl fmt::Display for PeerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerList::Mesh => "mesh.peers",
            PeerList::Explicit => "peers",
        })
    }
}

/// One semantic problem. Display: `what is wrong — how to fix`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Both a static address and autodetection.
    #[error(
        "node: both `address` and `autodetect` are set — keep `address` for a fixed address or `autodetect` to find it at start, not both"
    )]
    AddressAndAutodetect,
    /// Neither a static address nor autodetection.
    #[error(
        "node: no address — set `address: 10.0.0.5/24` (with the interface's prefix length) or `autodetect: {{interface: eth0}}` / `autodetect: {{can-reach: 10.0.0.1}}`"
    )]
    NoAddress,
    /// `autodetect.interface` is empty.
    #[error(
        "node.autodetect.interface is empty — name the underlay interface, e.g. `eth0` or a glob such as `ens*`"
    )]
    EmptyInterfacePattern,
    /// Not a Kubernetes node name.
    #[error(
        "node.name `{0}` is not a valid node name — use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, as `kubectl get nodes` shows it"
    )]
    BadNodeName(String),
    /// A per-node key in the file with `datastore: kubernetes`.
    #[error(
        "{key} is set, but with `datastore: kubernetes` each node's comes from its Node object (podCIDRs, InternalIP or the projectcalico.org/IPv4Address annotation, projectcalico.org/IPv4IPIPTunnelAddr, the podroute.io/route-reflector label) — remove `{key}` from the file, or set `datastore: file`"
    )]
    SetByKubernetes {
        /// The key.
        key: &'static str,
    },
    /// AS 0 or AS_TRANS.
    #[error(
        "{what}: AS {asn} is reserved (RFC 7607 / RFC 6793) — use the cluster's AS; private ASes are 64512–65534 and 4200000000–4294967294"
    )]
    ReservedAsn {
        /// Where (`asn` or `peers[N].asn`).
        what: String,
        /// The value.
        asn: u32,
    },
    /// A port of 0.
    #[error("{what}: port 0 — give a fixed port ({default} is the default)")]
    PortZero {
        /// Which setting.
        what: &'static str,
        /// Its default.
        default: u16,
    },
    /// No pools at all.
    #[error(
        "pools: none configured — list the cluster's IP pools (e.g. `- cidr: 10.244.0.0/16`): routes outside every pool are never installed"
    )]
    NoPools,
    /// A pool or block with host bits set.
    #[error("{what}: `{value}` has host bits set — did you mean `{network}`?")]
    NotNetworkAddress {
        /// Where (`pools[N].cidr`, `blocks[N]`).
        what: String,
        /// As written.
        value: IpNetwork,
        /// With the host bits cleared.
        network: IpNetwork,
    },
    /// Two pools share addresses.
    #[error(
        "pools: {a} and {b} overlap — pools must be disjoint (Calico refuses overlapping IP pools); remove or shrink one"
    )]
    OverlappingPools {
        /// The first.
        a: IpNetwork,
        /// The second.
        b: IpNetwork,
    },
    /// IPIP on an IPv6 pool.
    #[error(
        "pools: {cidr} is IPv6 with ipip-mode {mode} — IPIP carries IPv4 only and Calico forbids it on IPv6 pools; set `ipip-mode: never` (or leave it out)"
    )]
    Ipv6PoolWithIpip {
        /// The pool.
        cidr: IpNetwork,
        /// Its mode.
        mode: ModeName,
    },
    /// A local block outside every pool.
    #[error(
        "blocks: {0} is outside every pool — add the pool that holds it under `pools`, or fix the block"
    )]
    BlockOutsidePools(IpNetwork),
    /// Two local blocks share addresses.
    #[error("blocks: {a} and {b} overlap — list each block once")]
    OverlappingBlocks {
        /// The first.
        a: IpNetwork,
        /// The second.
        b: IpNetwork,
    },
    /// Not a usable interface name.
    #[error(
        "tunnel.device `{0}` is not a valid interface name — use 1 to 15 characters without '/', ':' or spaces (the default is tunl0)"
    )]
    BadDeviceName(String),
    /// A tunnel MTU outside IPv4's range.
    #[error(
        "tunnel.mtu {0} is outside 68–65515 (68 is IPv4's minimum, RFC 791; 65515 leaves room for the 20-byte outer header) — use 0 for the underlay MTU − 20, or a value in range"
    )]
    MtuOutOfRange(u32),
    /// A pin root the agent would resolve against its working directory.
    #[error(
        "tunnel.bpf-pin-root {0:?} is relative — give an absolute path on a bpffs (the default is /sys/fs/bpf/podroute)"
    )]
    RelativeBpfPinRoot(std::path::PathBuf),
    /// The tunnel address lies in no IPv4 pool.
    #[error(
        "tunnel.address {0} is inside no IPv4 pool — take it from an IPv4 pool (Calico allocates it from one with IPIP), or leave it out"
    )]
    TunnelAddressOutsidePools(Ipv4Addr),
    /// The mesh runs over the node's IPv4 address.
    #[error(
        "mesh.peers: {0} is IPv6 — the mesh runs over the nodes' IPv4 addresses (IPv6 routes ride on those sessions); put IPv6 neighbours under `peers` with their `asn`"
    )]
    Ipv6MeshPeer(IpAddr),
    /// A peer address that is this node.
    #[error(
        "{list}: {addr} is this node's own address — remove it; a node never peers with itself"
    )]
    PeerIsThisNode {
        /// The list holding it.
        list: PeerList,
        /// The address.
        addr: IpAddr,
    },
    /// The same neighbour twice.
    #[error(
        "{list}: {addr} is listed more than once (mesh and explicit peers share one session per address) — keep one entry"
    )]
    DuplicatePeer {
        /// Where the repeat was found.
        list: PeerList,
        /// The address.
        addr: IpAddr,
    },
    /// A block size that does not fit its pool.
    #[error(
        "pools: {pool}: block-size {size} is outside {min}–{max} — give the prefix length of the pool's blocks (Calico's blockSize: 26 for IPv4, 122 for IPv6 by default), at least the pool's own"
    )]
    BadBlockSize {
        /// The pool.
        pool: IpNetwork,
        /// The size given.
        size: u8,
        /// The pool's prefix length.
        min: u8,
        /// 32 or 128.
        max: u8,
    },
    /// Not a usable TCP-MD5 key.
    #[error(
        "{what}: the password is empty or longer than 80 bytes (TCP_MD5SIG_MAXKEYLEN) — use 1 to 80 bytes, the same on both sides"
    )]
    BadPassword {
        /// Where.
        what: String,
    },
    /// GTSM with 0 hops.
    #[error(
        "peers: {0}: ttl-security 0 would accept no packet — give the hop count to the neighbour (1 when directly connected)"
    )]
    TtlSecurityZero(IpAddr),
    /// Route reflection over eBGP.
    #[error(
        "peers: {addr}: route-reflector-client needs an iBGP neighbour, but its AS {asn} differs from ours ({local}) — set its `asn` to {local} or drop route-reflector-client"
    )]
    ReflectorClientNotIbgp {
        /// The neighbour.
        addr: IpAddr,
        /// Its AS.
        asn: u32,
        /// Ours.
        local: u32,
    },
    /// A maximum-prefix limit that cannot work.
    #[error(
        "peers: {0}: max-prefixes needs a limit above 0 and a warn-percent of at most 100 — fix the values or remove max-prefixes"
    )]
    BadMaxPrefixes(IpAddr),
    /// Source address of the other family.
    #[error(
        "peers: {addr}: local-address {local} is not of the neighbour's address family — use an address of the same family, or leave it out"
    )]
    LocalAddressFamily {
        /// The neighbour.
        addr: IpAddr,
        /// The source address given.
        local: IpAddr,
    },
    /// A hold time of 1 or 2 seconds.
    #[error(
        "hold-time {0} is not allowed: RFC 4271 §4.2 accepts 0 (no keepalives) or at least 3 s — use 90 (the default) or 240 (BIRD's)"
    )]
    BadHoldTime(u16),
    /// A connect retry time of zero, which would retry a refused
    /// connection in a tight loop.
    #[error(
        "connect-retry 0 would retry a refused connection in a tight loop: use 1 (the default) or more seconds"
    )]
    ZeroConnectRetry,
    /// A keepalive interval that is not below the hold time.
    #[error(
        "keepalive-time {keepalive} is not below hold-time {hold}: the peer would hold us down between keepalives — leave keepalive-time out (a third of the hold time) or make it smaller"
    )]
    KeepaliveNotBelowHold {
        /// The keepalive time.
        keepalive: u16,
        /// The hold time.
        hold: u16,
    },
    /// A reflector client range with room for nobody.
    #[error(
        "route-reflector.clients: {0} has limit 0 — no client could connect; give the most clients to accept at once (default 1000)"
    )]
    ClientLimitZero(IpNetwork),
    /// A reflector client range that is not a network address.
    #[error("route-reflector.clients: `{value}` has host bits set — did you mean `{network}`?")]
    ClientRangeNotNetwork {
        /// As written.
        value: IpNetwork,
        /// With the host bits cleared.
        network: IpNetwork,
    },
    /// Cluster ID 0.0.0.0.
    #[error(
        "route-reflector.cluster-id 0.0.0.0 is not a usable cluster ID — use an IPv4 address the reflectors of one cluster share, e.g. the first reflector's address"
    )]
    ZeroClusterId,
    /// Restart time outside RFC 4724's 12-bit field.
    #[error(
        "graceful-restart.restart-time {0} is outside 1–4095 s (a 12-bit field, RFC 4724 §3) — use 120, BIRD's and Calico's default"
    )]
    BadRestartTime(u16),
    /// A route protocol number owned by the kernel or another daemon.
    #[error(
        "route-protocol {proto} belongs to {owner}: the agent deletes every route of its protocol that it did not plan, so it would remove those routes — use the default 98 or another number no other daemon uses (see /etc/iproute2/rt_protos)"
    )]
    ReservedRouteProtocol {
        /// The number.
        proto: u8,
        /// Whose it is.
        owner: &'static str,
    },
    /// A CNI path that is not absolute.
    #[error(
        "{what} `{}` is not an absolute path — the agent and the container runtime run in different directories; write it from `/`, e.g. `/etc/cni/net.d`",
        path.display()
    )]
    CniPathNotAbsolute {
        /// Which key.
        what: &'static str,
        /// As written.
        path: PathBuf,
    },
    /// Not a file name container runtimes load as a network list.
    #[error(
        "cni.file `{0}` is not a plain file name ending in `.conflist` — runtimes load only `*.conflist` files as plugin lists and skip hidden ones; use e.g. `10-podroute.conflist`"
    )]
    CniBadFileName(String),
    /// Not a CNI network name.
    #[error(
        "cni.name `{0}` is not a valid CNI network name — use letters, digits, '_', '.' and '-', starting with a letter or digit (the default is podroute)"
    )]
    CniBadNetworkName(String),
    /// A pod MTU outside IPv4's range.
    #[error(
        "cni.mtu {0} is outside 68–65535 (68 is IPv4's minimum, RFC 791) — use 0 for the underlay MTU (less 20 with IPIP), or a value in range"
    )]
    CniMtuOutOfRange(u32),
    /// A pod MTU IPv6 cannot use, with IPv6 blocks.
    #[error(
        "cni.mtu {0} is below IPv6's minimum of 1280 (RFC 8200 §5) and this node has IPv6 blocks: its pods would get no IPv6 — use 0 (automatic) or at least 1280"
    )]
    CniMtuBelowIpv6Minimum(u32),
    /// A block host-local cannot allocate from.
    #[error(
        "blocks: {0} has no address for a pod: host-local keeps the network address, the gateway (first address) and the IPv4 broadcast address, and refuses blocks longer than /30 (IPv4) or /126 (IPv6) — use a larger block, or turn `cni.enabled` off"
    )]
    CniBlockTooSmall(IpNetwork),
    /// `datastore: etcd` without an `etcd` section.
    #[error(
        "datastore is etcd but there is no `etcd` section — add `etcd: {{endpoints: [https://10.0.0.1:2379], tls: {{ca: ..., cert: ..., key: ...}}}}`"
    )]
    EtcdMissing,
    /// An `etcd` section with another datastore.
    #[error(
        "`etcd` is set but datastore is {datastore} — set `datastore: etcd`, or remove the `etcd` section"
    )]
    EtcdWithoutEtcdDatastore {
        /// The datastore in force.
        datastore: &'static str,
    },
    /// `etcd.endpoints` is empty.
    #[error(
        "etcd.endpoints is empty — list the members' client URLs, e.g. `[https://10.0.0.1:2379]`"
    )]
    EtcdNoEndpoints,
    /// An endpoint that is not `http(s)://HOST:PORT`.
    #[error(
        "etcd.endpoints: `{0}` is not a client URL — write `https://HOST:PORT` (or `http://` without TLS), e.g. `https://10.0.0.1:2379`"
    )]
    EtcdBadEndpoint(String),
    /// `etcd.tls` with an `http://` endpoint.
    #[error(
        "etcd.tls is set but an endpoint is http:// — use https:// endpoints with TLS, or remove `etcd.tls`"
    )]
    EtcdTlsWithHttp,
    /// An `https://` endpoint without `etcd.tls`.
    #[error(
        "an etcd endpoint is https:// but `etcd.tls` is not set — add `etcd.tls: {{ca: CA.pem, cert: CERT.pem, key: KEY.pem}}`"
    )]
    EtcdHttpsWithoutTls,
    /// Only one of `cert` and `key`.
    #[error(
        "etcd.tls: `cert` and `key` go together — set both (the client certificate and its key) or neither"
    )]
    EtcdCertWithoutKey,
    /// A prefix that is not `/NAME`.
    #[error(
        "etcd.prefix `{0}` must start with '/', not end with '/', and hold no spaces — e.g. `/podroute`"
    )]
    EtcdBadPrefix(String),
    /// `mesh.peers` with `datastore: etcd`.
    #[error(
        "mesh.peers is set, but with `datastore: etcd` the other nodes come from their records in etcd — remove `mesh.peers`, or set `datastore: file`"
    )]
    MeshPeersWithEtcd,
}

/// An [`IpipMode`] as written in the config, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModeName(pub IpipMode);

impl fmt::Display for ModeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            IpipMode::Always => "always",
            IpipMode::CrossSubnet => "cross-subnet",
            IpipMode::Never => "never",
        })
    }
}

/// Something that works but is probably not what was meant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// A /32 node address: every other node is off-subnet.
    #[error(
        "node.address {0} is a /32: every other node counts as off-subnet and all routes go through the tunnel (Calico #2375) — give the interface's real prefix length"
    )]
    HostPrefixNodeAddress(ipnetwork::Ipv4Network),
    /// RFC 8212: an eBGP neighbour without a filter exchanges nothing.
    #[error(
        "peers: {addr}: eBGP without {missing} policy — RFC 8212: nothing is {verb} until you add `{missing}:` with a filter"
    )]
    EbgpWithoutPolicy {
        /// The neighbour.
        addr: IpAddr,
        /// `import` or `export`.
        missing: &'static str,
        /// `accepted` or `sent`.
        verb: &'static str,
    },
}
