//! The daemon's config file (YAML, kebab-case keys, unknown keys refused).
//!
//! `route-agent/examples/node.yaml` is a complete, commented example. The
//! top-level keys:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `node` | — | `name` (default `$NODE_NAME`, then the hostname); `address: 10.0.0.5/24` **or** `autodetect: {interface: eth0}` / `autodetect: {can-reach: 10.0.0.1}` (Calico's `interface=` / `can-reach=`); `address-v6: fd00::5/64` for IPv6 pools (default: the underlay interface's first global IPv6 address) |
//! | `asn` | 64512 | our AS (Calico's default) |
//! | `listen-port` | 179 | BGP port, bound on the node address |
//! | `pools` | — | `- cidr: 10.244.0.0/16` with `ipip-mode: always \| cross-subnet \| never` (default cross-subnet for IPv4, never for IPv6) and `block-size` (default: this node's blocks' length in the pool, else 26 / 122); other nodes' routes inside a pool are accepted at the block size and as /32 (/128) only |
//! | `blocks` | `[]` | this node's pod blocks, each inside a pool |
//! | `tunnel` | | `backend: auto \| kernel \| userspace`, `device: tunl0`, `mtu: 0` (= underlay MTU − 20), `address` |
//! | `mesh` | | `peers`: the other nodes' IPv4 addresses (node-to-node mesh, iBGP); `password` (TCP-MD5; shown, logged and served as `<redacted>`); `max-prefixes`: the limit on each other node, as a peer's (default [`Config::default_node_max_prefixes`]: 3 × the pools' blocks, Cease, restart after 60 s) |
//! | `peers` | `[]` | explicit neighbours: bgp-core's [`PeerConfig`] (`address`, `asn`, `password`, `ttl-security`, `route-reflector-client`, `max-prefixes`, `passive`, `import`, `export`, ...) |
//! | `graceful-restart` | enabled, 120 s | RFC 4724 |
//! | `route-protocol` | 98 | the kernel route protocol the agent owns |
//! | `persist-routes` | true | keep our kernel routes when the agent stops (BIRD's `persist`) |
//! | `nexthop-objects` | auto | gateway routes through kernel nexthop objects: `auto` for tables of over 1,000 gateway routes (back below 500), `true` always, `false` never; faster with hundreds of nodes and more, `ip route` then shows `nhid` |
//! | `admin` | `listen: 127.0.0.1:9179`, `per-peer-metrics: true` | the admin HTTP listener; `per-peer-metrics: false` leaves the series labelled by peer out of `/metrics` (large meshes), keeping sessions by state; `listen` needs a restart, `per-peer-metrics` follows a reload |
//! | `cni` | off | the CNI network config for the standard plugins ([`crate::cni`]): `enabled`, `conf-dir: /etc/cni/net.d`, `file: 10-podroute.conflist`, `name: podroute`, `mtu: 0` (= the underlay MTU, − 20 with IPIP), `ipam-data-dir` (host-local's leases) |
//! | `datastore` | `kubernetes` in a pod (`KUBERNETES_SERVICE_HOST` set), else `file` | where the nodes come from: `file` (this file's `blocks` and `mesh.peers`) or `kubernetes` (the Node objects, [`crate::datastore`]; then `blocks`, `mesh.peers`, `node.address`, `node.autodetect`, `tunnel.address` and `route-reflector` must not be set: each node's come from its Node) or `etcd` (node records and block claims in etcd, [`crate::datastore::etcd`]; `mesh.peers` must not be set) |
//! | `etcd` | — | with `datastore: etcd`: `endpoints` (`https://10.0.0.1:2379`, ...), `prefix` (default `/podroute`), `tls: {ca, cert, key}` (PEM files) |
//!
//! [`Config::parse`] checks the shape (errors carry `FILE:LINE:COL`) and
//! then every semantic rule (errors carry `FILE:`), collecting all
//! problems at once.

mod cni;
mod detect;
mod error;
mod etcd;
mod speaker;
mod text;
mod validate;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use bgp_core::policy::MaxPrefix;
use bgp_core::speaker::{GracefulRestart, Password, PeerConfig};
use ipnetwork::{IpNetwork, Ipv4Network};
use serde::{Deserialize, Deserializer, Serialize};

use crate::datastore::DatastoreKind;
use crate::planner::{IpipMode, LocalNode, Pool, TunnelEncap};

pub use cni::{
    CniConfig, DEFAULT_CNI_CONF_DIR, DEFAULT_CNI_FILE, DEFAULT_CNI_NETWORK, has_pod_addresses,
};
pub use detect::{DetectError, InterfaceAddress, detect_address};
pub use error::{ConfigError, ModeName, PeerList, Problem, Warning};
pub use etcd::{DEFAULT_ETCD_PREFIX, EtcdConfig, EtcdTls};

/// Calico's default AS.
pub const DEFAULT_ASN: u32 = 64512;
/// The BGP port.
pub const DEFAULT_BGP_PORT: u16 = 179;
/// RFC 4724 restart time used by BIRD and Calico.
pub const DEFAULT_RESTART_TIME: u16 = 120;
/// Hold time proposed on every session (GoBGP's and kube-router's 90 s;
/// BIRD proposes 240).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// The first connect retry wait in seconds ([`Config::connect_retry`]).
pub const DEFAULT_CONNECT_RETRY: u16 = 1;
/// Clients a route reflector accepts from one range at once.
pub const DEFAULT_CLIENT_LIMIT: u32 = 1000;
/// The kernel route protocol the agent owns unless configured otherwise
/// (`crate::fib::DEFAULT_PROTOCOL`).
pub const DEFAULT_ROUTE_PROTOCOL: u8 = crate::fib::DEFAULT_PROTOCOL;
/// The admin listener's default port. 9179: not taken by Calico
/// (9091–9099), kube-router (20244), MetalLB (7472/7473) or Cilium
/// (9962–9965, 9879), and it echoes BGP's 179.
pub const DEFAULT_ADMIN_PORT: u16 = 9179;
/// IPIP's outer IPv4 header.
pub const IPIP_OVERHEAD: u32 = 20;
/// Calico's default block size in an IPv4 pool.
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
/// Calico's default block size in an IPv6 pool.
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;
/// Blocks counted per pool at most for the default node max-prefix limit
/// (far beyond Kubernetes' 5,000 nodes, so a /48 IPv6 pool of /122 blocks
/// does not make the limit meaningless).
pub const MAX_BLOCKS_COUNTED: u64 = 1 << 16;
/// The default node max-prefix limit's floor (room for borrowed
/// addresses in small pools).
pub const MIN_NODE_MAX_PREFIXES: u32 = 1024;
/// Seconds before a node session closed for too many prefixes is started
/// again.
pub const NODE_MAX_PREFIX_RESTART: u32 = 60;

/// The whole config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// This node.
    pub node: NodeConfig,
    /// Our AS.
    #[serde(default = "default_asn")]
    pub asn: u32,
    /// The BGP port, bound on the node address.
    #[serde(default = "default_bgp_port")]
    pub listen_port: u16,
    /// The cluster's IP pools.
    #[serde(default)]
    pub pools: Vec<PoolSpec>,
    /// This node's pod blocks.
    #[serde(default, deserialize_with = "text::cidrs")]
    pub blocks: Vec<IpNetwork>,
    /// The IPIP tunnel.
    #[serde(default)]
    pub tunnel: TunnelConfig,
    /// The node-to-node mesh.
    #[serde(default)]
    pub mesh: MeshConfig,
    /// Explicit neighbours (route reflectors, ToRs, ...).
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// This node as a route reflector (Calico's `routeReflectorClusterID`):
    /// its cluster ID and the address ranges its clients connect from.
    #[serde(default)]
    pub route_reflector: Option<RouteReflectorConfig>,
    /// Hold time proposed on every session, in seconds (0, or 3 and up;
    /// RFC 4271 §4.2). A peer's own `hold-time` overrides it.
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    /// Keepalive interval in seconds (default: a third of the negotiated
    /// hold time, never more). A peer's own `keepalive-time` overrides it.
    #[serde(default)]
    pub keepalive_time: Option<u16>,
    /// Seconds before the first new connection attempt after one failed
    /// (BIRD's `connect retry time`); it doubles with every further failure
    /// up to 120 s. Short by default: a node that restarts (on a new
    /// address, after an upgrade) is reached within a second of listening
    /// again, not after a 5 s timer, while a dead node costs one SYN per
    /// doubling interval.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u16,
    /// Graceful restart.
    #[serde(default)]
    pub graceful_restart: GracefulRestartConfig,
    /// The kernel route protocol number the agent owns.
    #[serde(default = "default_route_protocol")]
    pub route_protocol: u8,
    /// Leave our kernel routes in place when the agent stops (BIRD's
    /// `persist`, as Calico runs it), so pods keep their connectivity
    /// across restarts. `false`: remove them on a clean stop (and close
    /// sessions with Cease, since forwarding is not preserved).
    #[serde(default = "default_true")]
    pub persist_routes: bool,
    /// Install gateway routes through kernel nexthop objects (`ip
    /// nexthop`, Linux ≥ 5.3): several times faster with thousands of
    /// nodes, but `ip route` shows `B nhid N via NH dev D` rather than
    /// Calico's `B via NH dev D onlink`. `auto` (the default): only for
    /// tables of over 1,000 gateway routes ([`crate::fib::NexthopMode`]).
    #[serde(
        default,
        deserialize_with = "text::nexthop_mode",
        serialize_with = "text::write_nexthop_mode"
    )]
    pub nexthop_objects: crate::fib::NexthopMode,
    /// The admin HTTP listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The CNI network config the agent writes (off by default).
    #[serde(default)]
    pub cni: CniConfig,
    /// Where the nodes come from; `None` as written means the default,
    /// resolved by [`Config::parse`] ([`DatastoreKind::from_env`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<DatastoreKind>,
    /// The etcd cluster of `datastore: etcd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdConfig>,
}

fn default_asn() -> u32 {
    DEFAULT_ASN
}
fn default_bgp_port() -> u16 {
    DEFAULT_BGP_PORT
}
fn default_hold_time() -> u16 {
    DEFAULT_HOLD_TIME
}
fn default_connect_retry() -> u16 {
    DEFAULT_CONNECT_RETRY
}
fn default_client_limit() -> u32 {
    DEFAULT_CLIENT_LIMIT
}
fn default_route_protocol() -> u8 {
    DEFAULT_ROUTE_PROTOCOL
}
fn default_true() -> bool {
    true
}
fn default_restart_time() -> u16 {
    DEFAULT_RESTART_TIME
}
fn default_device() -> String {
    "tunl0".to_owned()
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_ADMIN_PORT))
}

/// This node's identity and address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeConfig {
    /// The Kubernetes node name; see [`resolve_node_name`].
    #[serde(default)]
    pub name: Option<String>,
    /// The node's IPv4 address with its interface's prefix length
    /// (`10.0.0.5/24`); the prefix is the CrossSubnet test, so it is
    /// required.
    #[serde(default, deserialize_with = "node_address")]
    pub address: Option<Ipv4Network>,
    /// Find the address at start instead.
    #[serde(default)]
    pub autodetect: Option<Autodetect>,
    /// The node's IPv6 address with prefix length (`fd00::5/64`), for
    /// IPv6 pools (dual stack; Calico's `IP6`): the next hop of our IPv6
    /// blocks and the subnet that decides direct IPv6 routes. Default: the
    /// first global IPv6 address on the underlay interface, if any.
    #[serde(default, deserialize_with = "node_address_v6")]
    pub address_v6: Option<ipnetwork::Ipv6Network>,
}

/// How to find the node address (Calico `IP_AUTODETECTION_METHOD`),
/// written `{interface: eth0}` or `{can-reach: 10.0.0.1}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", try_from = "AutodetectSpec")]
pub enum Autodetect {
    /// The first IPv4 address on an interface whose name matches this glob
    /// (`eth0`, `ens*`). Calico's `interface=` takes a regex; a glob covers
    /// the names in practice without a regex engine.
    Interface(String),
    /// The address the kernel would use as source towards this address
    /// (Calico's `can-reach=`).
    CanReach(Ipv4Addr),
}

/// [`Autodetect`] as written: a map with exactly one of the keys.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct AutodetectSpec {
    #[serde(default)]
    interface: Option<String>,
    #[serde(default, deserialize_with = "text::ipv4")]
    can_reach: Option<Ipv4Addr>,
}

/// Why an `autodetect` map names no single method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AutodetectSpecError {
    /// Neither `interface` nor `can-reach`.
    #[error(
        "autodetect needs exactly one method — write `{{interface: eth0}}` or `{{can-reach: 10.0.0.1}}`"
    )]
    NoMethod,
    /// Both.
    #[error(
        "autodetect needs exactly one method, not both — write `{{interface: eth0}}` or `{{can-reach: 10.0.0.1}}`"
    )]
    BothMethods,
}

impl TryFrom<AutodetectSpec> for Autodetect {
    type Error = AutodetectSpecError;

    fn try_from(s: AutodetectSpec) -> Result<Autodetect, AutodetectSpecError> {
        match (s.interface, s.can_reach) {
            (Some(i), None) => Ok(Autodetect::Interface(i)),
            (None, Some(t)) => Ok(Autodetect::CanReach(t)),
            (None, None) => Err(AutodetectSpecError::NoMethod),
            (Some(_), Some(_)) => Err(AutodetectSpecError::BothMethods),
        }
    }
}

fn node_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Network>, D::Error> {
    use serde::de::Error;
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if !s.contains('/') {
        return Err(D::Error::custom(format!(
            "`{s}` has no prefix length — write the interface's prefix too, e.g. `{s}/24`: without it every other node would count as off-subnet"
        )));
    }
    s.parse().map(Some).map_err(|e| {
        D::Error::custom(format!(
            "`{s}` is not an IPv4 address with prefix length ({e}) — write it as e.g. `10.0.0.5/24`"
        ))
    })
}

fn node_address_v6<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ipnetwork::Ipv6Network>, D::Error> {
    use serde::de::Error;
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if !s.contains('/') {
        return Err(D::Error::custom(format!(
            "`{s}` has no prefix length — write the interface's prefix too, e.g. `{s}/64`"
        )));
    }
    s.parse().map(Some).map_err(|e| {
        D::Error::custom(format!(
            "`{s}` is not an IPv6 address with prefix length ({e}) — write it as e.g. `fd00::5/64`"
        ))
    })
}

/// One IP pool as written: its mode is optional, defaulting by family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PoolSpec {
    /// The pool.
    #[serde(deserialize_with = "text::cidr")]
    pub cidr: IpNetwork,
    /// `always`, `cross-subnet` or `never` (Calico's `Always`,
    /// `CrossSubnet`, `Never` are accepted too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_mode: Option<IpipMode>,
    /// The prefix length of the pool's blocks (Calico's `blockSize`);
    /// default: that of this node's blocks in the pool, else Calico's 26
    /// (IPv4) or 122 (IPv6). Routes from other nodes inside the pool are
    /// accepted at this length and as single addresses only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
}

impl PoolSpec {
    /// The planner's pool: IPv4 pools default to CrossSubnet, IPv6 pools to
    /// Never (IPIP is IPv4-only).
    pub fn pool(&self) -> Pool {
        let default = match self.cidr {
            IpNetwork::V4(_) => IpipMode::CrossSubnet,
            IpNetwork::V6(_) => IpipMode::Never,
        };
        Pool {
            cidr: self.cidr,
            ipip_mode: self.ipip_mode.unwrap_or(default),
        }
    }
}

/// Which IPIP data plane to drive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelBackend {
    /// The kernel's tunl0 when the kernel has ipip, else the eBPF
    /// programs, else userspace (the reason logged and in the status).
    #[default]
    Auto,
    /// The kernel's ipip module only.
    Kernel,
    /// IPIP in eBPF programs ([`ipip::bpf`]): tunnel routes through the
    /// underlay with an `encap bpf xmit` program, a tc ingress program
    /// opening IPIP from nodes; for kernels without the ipip module.
    Bpf,
    /// The userspace data plane only.
    Userspace,
}

/// The IPIP tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TunnelConfig {
    /// Which data plane.
    #[serde(default)]
    pub backend: TunnelBackend,
    /// The device (`tunl0`, the kernel's fallback IPIP device).
    #[serde(default = "default_device")]
    pub device: String,
    /// MTU of tunnel routes; 0: the underlay MTU − 20 (Calico's `IpInIpMtu`).
    #[serde(default)]
    pub mtu: u32,
    /// The tunnel's own /32 (Calico's `ipv4IPIPTunnelAddr`).
    #[serde(default, deserialize_with = "text::ipv4")]
    pub address: Option<Ipv4Addr>,
    /// Userspace backend: bulk TCP leaves through the GRO device
    /// (`tunl0-gro`, see `ipip::userspace::gro`). `false`: every outer
    /// packet goes on the raw socket, for hosts whose FORWARD chain would
    /// drop what the GRO device forwards.
    #[serde(default = "default_true")]
    pub gro_egress: bool,
    /// `bpf` backend: where its programs and maps are pinned (on a bpffs;
    /// one is mounted at `/sys/fs/bpf` when none is), so a restarted
    /// agent adopts them instead of loading them again.
    #[serde(default = "default_bpf_pin_root")]
    pub bpf_pin_root: std::path::PathBuf,
}

fn default_bpf_pin_root() -> std::path::PathBuf {
    std::path::PathBuf::from(ipip::bpf::DEFAULT_PIN_ROOT)
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            backend: TunnelBackend::Auto,
            device: default_device(),
            mtu: 0,
            address: None,
            gro_egress: true,
            bpf_pin_root: default_bpf_pin_root(),
        }
    }
}

impl TunnelConfig {
    /// The MTU of tunnel routes given the underlay's.
    ///
    /// ```
    /// let t = route_agent::config::TunnelConfig::default();
    /// assert_eq!(t.effective_mtu(1500), 1480);
    /// ```
    pub fn effective_mtu(&self, underlay_mtu: u32) -> u32 {
        if self.mtu == 0 {
            underlay_mtu.saturating_sub(IPIP_OVERHEAD)
        } else {
            self.mtu
        }
    }
}

/// This node reflects routes (RFC 4456) for its clients: the nodes that
/// connect from `clients` (dynamic neighbours, so a reflector does not list
/// every node) and explicit `peers` marked `route-reflector-client`.
/// Reflectors that back each other up share one `cluster-id`; every client
/// peers with all of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RouteReflectorConfig {
    /// The cluster ID (RFC 4456 §7), the same on redundant reflectors.
    pub cluster_id: Ipv4Addr,
    /// Address ranges clients connect from (iBGP, our AS).
    #[serde(default)]
    pub clients: Vec<ClientRange>,
}

/// Clients accepted from an address range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClientRange {
    /// The addresses clients connect from (the nodes' subnet, say).
    pub prefix: IpNetwork,
    /// The most clients from this range at once.
    #[serde(default = "default_client_limit")]
    pub limit: u32,
    /// TCP-MD5 password for the whole range (RFC 2385); shown and
    /// serialised redacted.
    #[serde(default)]
    pub password: Option<Password>,
}

/// The node-to-node mesh: iBGP to every other node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MeshConfig {
    /// The other nodes' IPv4 addresses. The node's own address may appear
    /// when it is autodetected (one file for every node); it is skipped.
    #[serde(default, deserialize_with = "text::ips")]
    pub peers: Vec<IpAddr>,
    /// TCP-MD5 password for every mesh session (Calico's
    /// `nodeMeshPassword`); shown and serialised redacted.
    #[serde(default)]
    pub password: Option<Password>,
    /// The limit on prefixes from each other node (mesh peers, reflectors
    /// and reflector clients), bgp-core's [`MaxPrefix`]: `limit`,
    /// `action`, `warn-percent`, `restart-after`. Default:
    /// [`Config::default_node_max_prefixes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefixes: Option<MaxPrefix>,
}

/// Graceful restart (RFC 4724).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GracefulRestartConfig {
    /// Advertise and honour graceful restart.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds peers keep our routes while we restart.
    #[serde(default = "default_restart_time")]
    pub restart_time: u16,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            enabled: true,
            restart_time: DEFAULT_RESTART_TIME,
        }
    }
}

/// The admin HTTP listener (`/healthz`, `/readyz`, `/metrics`, `/api/v1/*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AdminConfig {
    /// Where to listen; loopback by default.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Whether `/metrics` carries the series labelled by peer (up, uptime,
    /// prefixes, info); on by default. Off, a node of a large mesh serves
    /// a few dozen series instead of several per peer, and the aggregates
    /// stay (`route_agent_bgp_sessions` by state).
    #[serde(default = "default_true")]
    pub per_peer_metrics: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            per_peer_metrics: true,
        }
    }
}

/// Calico's mesh rule: of each pair only one node connects. We are passive
/// towards (wait for) a peer whose address string compares greater than
/// ours, so the side with the greater string connects to the lower one
/// (BIRD `passive on; # Mesh is unidirectional, peer will connect to us.`).
///
/// The comparison is on the text, as Calico's confd does (`"10.0.0.10" <
/// "10.0.0.9"`), so a mixed mesh with Calico nodes agrees on who connects;
/// a numeric order would leave such pairs both waiting.
///
/// ```
/// use route_agent::config::mesh_peer_is_passive;
/// let me = "10.0.0.5".parse().unwrap();
/// assert!(mesh_peer_is_passive(me, "10.0.0.6".parse().unwrap()));
/// assert!(!mesh_peer_is_passive(me, "10.0.0.10".parse().unwrap()));
/// ```
pub fn mesh_peer_is_passive(local: IpAddr, peer: IpAddr) -> bool {
    peer.to_string() > local.to_string()
}

/// The node name: the configured one, else `$NODE_NAME`, else the hostname
/// (kube-router's and Calico's order); empty values count as unset.
pub fn resolve_node_name(
    configured: Option<&str>,
    env: Option<&str>,
    hostname: Option<&str>,
) -> Option<String> {
    [configured, env, hostname]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Config {
    /// Reads and checks `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_owned(),
            source,
        })?;
        Config::parse(file, &text)
    }

    /// Parses and checks `text`, read from `file` (used in messages); an
    /// unset `datastore` is this process's default
    /// ([`DatastoreKind::from_env`]).
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(file, text, DatastoreKind::from_env())
    }

    /// [`Config::parse`] with `default` for an unset `datastore`.
    pub fn parse_with(
        file: &Path,
        text: &str,
        default: DatastoreKind,
    ) -> Result<Config, ConfigError> {
        // An empty document reads as null and would be reported as a
        // missing `node`, which hides the real problem.
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err(ConfigError::Parse {
                file: file.to_owned(),
                line: None,
                column: None,
                message: "the file is empty".to_owned(),
                hint: "write a config (see route-agent/examples/node.yaml)".to_owned(),
            });
        }
        let mut config: Config =
            yaml_serde::from_str(text).map_err(|e| validate::parse_error(file, text, &e))?;
        let datastore = *config.datastore.get_or_insert(default);
        // A Kubernetes node needs a pod network config; a plain host not.
        config
            .cni
            .enabled
            .get_or_insert(datastore == DatastoreKind::Kubernetes);
        let problems = validate::problems(&config);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                problems,
            })
        }
    }

    /// Where the nodes come from (resolved by [`Config::parse`]).
    pub fn datastore(&self) -> DatastoreKind {
        self.datastore.unwrap_or(DatastoreKind::File)
    }

    /// Things that work but are probably not meant.
    pub fn warnings(&self) -> Vec<Warning> {
        validate::warnings(self)
    }

    /// The planner's pools.
    pub fn pools(&self) -> Vec<Pool> {
        self.pools.iter().map(PoolSpec::pool).collect()
    }

    /// The graceful-restart setting as the speaker takes it.
    pub fn graceful_restart(&self) -> Option<GracefulRestart> {
        self.graceful_restart
            .enabled
            .then(|| GracefulRestart::new(self.graceful_restart.restart_time))
    }

    /// What the planner needs, once the address, underlay interface and
    /// its MTU are known.
    pub fn local_node(&self, ipv4: Ipv4Network, underlay: &str, underlay_mtu: u32) -> LocalNode {
        LocalNode {
            ipv4: Some(ipv4),
            ipv6: None,
            underlay: underlay.to_owned(),
            tunnel_device: self.tunnel.device.clone(),
            tunnel_mtu: self.tunnel.effective_mtu(underlay_mtu),
            tunnel_encap: TunnelEncap::Device,
            blocks: self.blocks.clone(),
        }
    }

    /// One paragraph for `check-config`.
    pub fn summary(&self, node_name: Option<&str>) -> String {
        let name = node_name.unwrap_or("(unnamed: set node.name or NODE_NAME)");
        let address = match (&self.node.address, &self.node.autodetect) {
            (Some(a), _) => format!("address {a}"),
            (None, Some(Autodetect::Interface(i))) => format!("address from interface {i}"),
            (None, Some(Autodetect::CanReach(t))) => format!("address that can reach {t}"),
            (None, None) => "no address".to_owned(),
        };
        let pools: Vec<String> = self
            .pools()
            .iter()
            .map(|p| format!("{} {}", p.cidr, ModeName(p.ipip_mode)))
            .collect();
        let mtu = match self.tunnel.mtu {
            0 => "underlay MTU − 20".to_owned(),
            m => m.to_string(),
        };
        let mesh = match self.node.address {
            Some(a) => {
                let me = IpAddr::V4(a.ip());
                let passive = self
                    .mesh
                    .peers
                    .iter()
                    .filter(|&&p| mesh_peer_is_passive(me, p))
                    .count();
                format!(
                    "{} mesh peers ({} we connect to, {passive} that connect to us)",
                    self.mesh.peers.len(),
                    self.mesh.peers.len() - passive
                )
            }
            None => format!("{} mesh peers", self.mesh.peers.len()),
        };
        let backend = match self.tunnel.backend {
            TunnelBackend::Auto => "auto",
            TunnelBackend::Kernel => "kernel",
            TunnelBackend::Bpf => "bpf",
            TunnelBackend::Userspace => "userspace",
        };
        let gr = if self.graceful_restart.enabled {
            format!("graceful restart {} s", self.graceful_restart.restart_time)
        } else {
            "no graceful restart".to_owned()
        };
        format!(
            "node {name}, {address}, AS {}, BGP port {}; {} pool(s) ({}), {} local block(s); tunnel {} ({backend} backend, MTU {mtu}); {mesh} and {} explicit peer(s); {gr}; route protocol {}; admin on {}.",
            self.asn,
            self.listen_port,
            pools.len(),
            pools.join(", "),
            self.blocks.len(),
            self.tunnel.device,
            self.peers.len(),
            self.route_protocol,
            self.admin.listen,
        )
    }
}
