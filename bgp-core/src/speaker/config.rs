//! The speaker's configuration, as read from YAML or JSON by serde.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::Password;
use crate::policy::{MaxPrefix, PrefixFilter};

fn default_hold_time() -> u16 {
    90
}
fn default_port() -> u16 {
    179
}
fn default_true() -> bool {
    true
}
fn default_connect_retry() -> u64 {
    5
}
fn default_restart_time() -> u16 {
    120
}

/// Where the speaker accepts connections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct ListenConfig {
    /// Address to bind (`::` accepts IPv4 and IPv6).
    #[serde(default = "default_listen_address")]
    pub address: IpAddr,
    /// TCP port (179).
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_listen_address() -> IpAddr {
    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}

impl ListenConfig {
    /// Listen on `address`, `port`.
    pub fn new(address: IpAddr, port: u16) -> ListenConfig {
        ListenConfig { address, port }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            address: default_listen_address(),
            port: default_port(),
        }
    }
}

/// Graceful restart (RFC 4724), both roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct GracefulRestart {
    /// Seconds peers keep our routes after we go down (BIRD and Calico: 120).
    #[serde(default = "default_restart_time")]
    pub restart_time: u16,
    /// We are restarting: set the Restart State bit in our OPENs until each
    /// peer has re-established, so peers keep our routes and the kernel
    /// routes we left in place stay valid.
    #[serde(default)]
    pub restarting: bool,
}

impl GracefulRestart {
    /// Graceful restart with this restart time, not restarting now.
    pub fn new(restart_time: u16) -> GracefulRestart {
        GracefulRestart {
            restart_time,
            restarting: false,
        }
    }
}

/// One neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct PeerConfig {
    /// The neighbour's address.
    pub address: IpAddr,
    /// Its AS number; equal to ours for iBGP.
    pub asn: u32,
    /// Its BGP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Our source address for this session.
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// Only accept connections, never connect.
    #[serde(default)]
    pub passive: bool,
    /// TCP-MD5 password (RFC 2385); shown and serialised redacted.
    #[serde(default)]
    pub password: Option<Password>,
    /// GTSM: the neighbour is at most this many hops away (RFC 5082).
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// The neighbour is our route-reflector client (RFC 4456).
    #[serde(default)]
    pub route_reflector_client: bool,
    /// Set ourselves as next hop on routes sent to this iBGP neighbour
    /// (always done towards eBGP).
    #[serde(default)]
    pub next_hop_self: bool,
    /// Limit on prefixes accepted from the neighbour.
    #[serde(default)]
    pub max_prefixes: Option<MaxPrefix>,
    /// Import filter; without one an eBGP neighbour sends us nothing
    /// (RFC 8212).
    #[serde(default)]
    pub import: Option<PrefixFilter>,
    /// Export filter; without one an eBGP neighbour gets nothing (RFC 8212).
    #[serde(default)]
    pub export: Option<PrefixFilter>,
    /// Hold time override.
    #[serde(default)]
    pub hold_time: Option<u16>,
    /// Keepalive interval override in seconds (default: a third of the
    /// negotiated hold time, never more).
    #[serde(default)]
    pub keepalive_time: Option<u16>,
    /// Accept ADD-PATH path identifiers from this neighbour (RFC 7911).
    #[serde(default)]
    pub add_path_receive: bool,
    /// Exchange IPv4 unicast.
    #[serde(default = "default_true")]
    pub ipv4: bool,
    /// Exchange IPv6 unicast.
    #[serde(default = "default_true")]
    pub ipv6: bool,
}

impl PeerConfig {
    /// An iBGP or eBGP neighbour with defaults for everything else.
    pub fn new(address: IpAddr, asn: u32) -> PeerConfig {
        PeerConfig {
            address,
            asn,
            port: default_port(),
            local_address: None,
            passive: false,
            password: None,
            ttl_security: None,
            route_reflector_client: false,
            next_hop_self: false,
            max_prefixes: None,
            import: None,
            export: None,
            hold_time: None,
            keepalive_time: None,
            add_path_receive: false,
            ipv4: true,
            ipv6: true,
        }
    }
}

/// The whole speaker. Field names in YAML / JSON are kebab-case
/// (`local-as`, `router-id`, `peers`, ...).
///
/// ```
/// use bgp_core::speaker::{ListenConfig, PeerConfig, SpeakerConfig};
///
/// let mut config = SpeakerConfig::new(64512, "10.0.0.1".parse().unwrap());
/// config.listen = Some(ListenConfig::new("0.0.0.0".parse().unwrap(), 1179));
/// config.peers.push(PeerConfig::new("10.0.0.2".parse().unwrap(), 64512));
/// assert_eq!(config.peers[0].port, 179);
/// assert_eq!(config.hold_time, 90);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct SpeakerConfig {
    /// Our AS (Calico's default is 64512).
    pub local_as: u32,
    /// Our BGP identifier (Calico uses the node's IPv4 address).
    pub router_id: Ipv4Addr,
    /// Where to accept connections; `None` accepts none.
    #[serde(default)]
    pub listen: Option<ListenConfig>,
    /// Proposed hold time (90 s).
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    /// Keepalive interval in seconds (default: a third of the negotiated
    /// hold time, never more).
    #[serde(default)]
    pub keepalive_time: Option<u16>,
    /// First connect-retry interval in seconds (Calico: 5), doubling to 120.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u64,
    /// Graceful restart; `None` disables it.
    #[serde(default)]
    pub graceful_restart: Option<GracefulRestart>,
    /// Our cluster ID when acting as a route reflector (defaults to the
    /// router ID when any peer is a client).
    #[serde(default)]
    pub cluster_id: Option<Ipv4Addr>,
    /// Forward unknown optional transitive attributes learned over eBGP into
    /// iBGP (off: one bad external router cannot reach every node).
    #[serde(default)]
    pub forward_unknown_from_ebgp: bool,
    /// Neighbours.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Address ranges sessions are accepted from without listing each
    /// neighbour (a route reflector's clients).
    #[serde(default)]
    pub dynamic_neighbors: Vec<NeighborRange>,
}

impl SpeakerConfig {
    /// A speaker with no listener and no peers.
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> SpeakerConfig {
        SpeakerConfig {
            local_as,
            router_id,
            listen: None,
            hold_time: default_hold_time(),
            keepalive_time: None,
            connect_retry: default_connect_retry(),
            graceful_restart: None,
            cluster_id: None,
            forward_unknown_from_ebgp: false,
            peers: Vec::new(),
            dynamic_neighbors: Vec::new(),
        }
    }
}

fn default_range_limit() -> u32 {
    1000
}

/// Neighbours accepted from an address range (BIRD's `neighbor range`,
/// FRR's `bgp listen range`, GoBGP's dynamic neighbours): any address in
/// `prefix` may connect, up to `limit` at once, and becomes a passive
/// neighbour with these settings. It shows in status like a configured one
/// and is forgotten when its session ends (after graceful restart, if it
/// negotiated it).
///
/// ```
/// use bgp_core::speaker::SpeakerConfig;
///
/// let config: SpeakerConfig = serde_json::from_str(r#"{
///     "local-as": 64512, "router-id": "10.0.0.1", "cluster-id": "10.0.0.1",
///     "dynamic-neighbors": [{"prefix": "10.0.0.0/16", "asn": 64512,
///                            "route-reflector-client": true}]
/// }"#).unwrap();
/// assert_eq!(config.dynamic_neighbors[0].limit, 1000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct NeighborRange {
    /// Addresses accepted.
    pub prefix: ipnetwork::IpNetwork,
    /// Their AS number; equal to ours for iBGP.
    pub asn: u32,
    /// The most neighbours from this range at once (1,000).
    #[serde(default = "default_range_limit")]
    pub limit: u32,
    /// They are our route-reflector clients (RFC 4456).
    #[serde(default)]
    pub route_reflector_client: bool,
    /// Set ourselves as next hop on routes sent to them (iBGP).
    #[serde(default)]
    pub next_hop_self: bool,
    /// TCP-MD5 password for the whole range (RFC 2385); shown and
    /// serialised redacted.
    #[serde(default)]
    pub password: Option<Password>,
    /// GTSM hop limit (RFC 5082).
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// Limit on prefixes accepted from each.
    #[serde(default)]
    pub max_prefixes: Option<MaxPrefix>,
    /// Import filter.
    #[serde(default)]
    pub import: Option<PrefixFilter>,
    /// Export filter.
    #[serde(default)]
    pub export: Option<PrefixFilter>,
    /// Hold time override.
    #[serde(default)]
    pub hold_time: Option<u16>,
    /// Keepalive interval override in seconds.
    #[serde(default)]
    pub keepalive_time: Option<u16>,
    /// Accept ADD-PATH path identifiers (RFC 7911).
    #[serde(default)]
    pub add_path_receive: bool,
    /// Exchange IPv4 unicast.
    #[serde(default = "default_true")]
    pub ipv4: bool,
    /// Exchange IPv6 unicast.
    #[serde(default = "default_true")]
    pub ipv6: bool,
}

impl NeighborRange {
    /// A range of neighbours in `asn` with defaults for everything else.
    pub fn new(prefix: ipnetwork::IpNetwork, asn: u32) -> NeighborRange {
        NeighborRange {
            prefix,
            asn,
            limit: default_range_limit(),
            route_reflector_client: false,
            next_hop_self: false,
            password: None,
            ttl_security: None,
            max_prefixes: None,
            import: None,
            export: None,
            hold_time: None,
            keepalive_time: None,
            add_path_receive: false,
            ipv4: true,
            ipv6: true,
        }
    }

    /// The configuration of the neighbour at `address` in this range:
    /// passive (it connects to us).
    pub fn peer(&self, address: IpAddr) -> PeerConfig {
        PeerConfig {
            passive: true,
            password: self.password.clone(),
            ttl_security: self.ttl_security,
            route_reflector_client: self.route_reflector_client,
            next_hop_self: self.next_hop_self,
            max_prefixes: self.max_prefixes,
            import: self.import.clone(),
            export: self.export.clone(),
            hold_time: self.hold_time,
            keepalive_time: self.keepalive_time,
            add_path_receive: self.add_path_receive,
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            ..PeerConfig::new(address, self.asn)
        }
    }
}
