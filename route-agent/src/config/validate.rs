//! Parse errors turned into `FILE:LINE:COL: what — fix`, and the semantic
//! rules a well-formed config must also pass.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use ipnetwork::IpNetwork;

use super::error::{ConfigError, ModeName, PeerList, Problem, Warning};
use super::{Autodetect, Config};
use crate::datastore::DatastoreKind;
use crate::planner::IpipMode;
use bgp_core::speaker::Password;

/// Where the example config lives, for hints.
const EXAMPLE: &str = "route-agent/examples/node.yaml";

/// A yaml_serde error as a [`ConfigError::Parse`].
///
/// yaml_serde's Display appends ` at line L column C`; the location comes
/// from [`yaml_serde::Error::location`] instead, so the suffix is cut and
/// the message gets a fix. For values the parser rejects (a bad CIDR or
/// address) the offending text is quoted from the file, since ipnetwork's
/// messages do not include it.
pub(super) fn parse_error(file: &Path, text: &str, e: &yaml_serde::Error) -> ConfigError {
    let location = e.location();
    let mut message = e.to_string();
    if let Some(loc) = &location {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(at) = message.find(&suffix) {
            message.replace_range(at..at + suffix.len(), "");
        }
    }
    let (line, column) = match &location {
        Some(l) => refine(text, &message, l.line(), l.column()),
        None => (None, None),
    };
    // A password is never quoted back (issue 16): the error names the key.
    let secret = message
        .split_once(": ")
        .is_some_and(|(path, _)| path.rsplit('.').next() == Some("password"));
    let value = line
        .zip(column)
        .filter(|_| !secret)
        .and_then(|(l, c)| value_at(text, l, c));
    let (message, hint) = explain(message, value);
    ConfigError::Parse {
        file: file.to_owned(),
        line,
        column,
        message,
        hint,
    }
}

/// yaml_serde marks an error inside a sequence at the sequence's start;
/// for the values our deserialisers quote (`` `V` is not ...``), point at
/// the first occurrence of V from there on instead.
fn refine(text: &str, message: &str, line: usize, column: usize) -> (Option<usize>, Option<usize>) {
    let quoted = message
        .split_once('`')
        .and_then(|(_, rest)| rest.split_once("` is not "))
        .map(|(v, _)| v)
        .filter(|v| !v.is_empty());
    let found = quoted.and_then(|v| {
        text.lines()
            .enumerate()
            .skip(line.saturating_sub(1))
            .find_map(|(i, l)| l.find(v).map(|at| (i + 1, l[..at].chars().count() + 1)))
    });
    match found {
        Some((l, c)) => (Some(l), Some(c)),
        None => (Some(line), Some(column)),
    }
}

/// Splits off or invents the fix for a parse message.
fn explain(message: String, value: Option<String>) -> (String, String) {
    // Our own deserialisers already say `what — fix`.
    if let Some((what, fix)) = message.split_once(" — ") {
        return (what.to_owned(), fix.to_owned());
    }
    let quoted = |m: &str| match &value {
        Some(v) => format!("{m} (got `{v}`)"),
        None => m.to_owned(),
    };
    let has = |s: &str| message.contains(s);
    if has("unknown field") {
        let hint = "remove it or correct its spelling to one of the fields listed".to_owned();
        (message, hint)
    } else if has("unknown variant") {
        (message, "use one of the values listed".to_owned())
    } else if has("missing field") {
        (message, format!("add it (see {EXAMPLE})"))
    } else if has("invalid prefix range") {
        (
            message,
            "a rule needs prefix length <= ge <= le <= 32 (IPv4) or 128 (IPv6)".to_owned(),
        )
    } else if has("invalid prefix") || has("invalid cidr") || has("invalid address") {
        (
            quoted(&message),
            "write a CIDR as ADDRESS/LENGTH, e.g. 10.244.0.0/16, with LENGTH at most 32 for IPv4 and 128 for IPv6".to_owned(),
        )
    } else if has("address syntax") {
        (
            quoted(&message),
            "write an IP address such as 10.0.0.1 or fd00::1, without a prefix length".to_owned(),
        )
    } else if has("invalid type") || has("invalid value") || has("invalid length") {
        (
            quoted(&message),
            format!("give a value of the expected kind (see {EXAMPLE})"),
        )
    } else {
        (
            message,
            "fix the YAML at that position: indentation, a missing ':', or an unclosed quote or bracket".to_owned(),
        )
    }
}

/// The plain scalar at 1-based `line`:`column`. yaml_serde marks a bad
/// map value at its key, so a leading `- ` and `key: ` are skipped; flow
/// collections are not taken apart (`None`).
fn value_at(text: &str, line: usize, column: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let rest: String = l.chars().skip(column.checked_sub(1)?).collect();
    let mut v = rest.trim_start();
    v = v.strip_prefix("- ").unwrap_or(v).trim_start();
    if let Some((key, value)) = v.split_once(": ")
        && !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        v = value;
    }
    let v = v.split(" #").next().unwrap_or("").trim();
    if v.starts_with(['[', '{']) {
        return None;
    }
    let v = v.trim_matches(['"', '\'']);
    (!v.is_empty()).then(|| v.to_owned())
}

fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    match (a, b) {
        (IpNetwork::V4(x), IpNetwork::V4(y)) => x.contains(y.network()) || y.contains(x.network()),
        (IpNetwork::V6(x), IpNetwork::V6(y)) => x.contains(y.network()) || y.contains(x.network()),
        _ => false,
    }
}

fn inside(inner: &IpNetwork, outer: &IpNetwork) -> bool {
    outer.prefix() <= inner.prefix() && overlaps(inner, outer)
}

fn network_of(n: &IpNetwork) -> IpNetwork {
    // A prefix length valid for `n` stays valid.
    IpNetwork::new(n.network(), n.prefix()).unwrap_or(*n)
}

/// Kernel route protocols (`/etc/iproute2/rt_protos`, linux
/// `rtnetlink.h`) whose routes the agent must never own.
fn route_protocol_owner(proto: u8) -> Option<&'static str> {
    Some(match proto {
        0 => "nobody (RTPROT_UNSPEC is not a valid owner)",
        1 => "ICMP redirects (RTPROT_REDIRECT)",
        2 => "the kernel (RTPROT_KERNEL)",
        3 => "boot-time and `ip route add` routes (RTPROT_BOOT), Calico's pod routes among them",
        4 => "the administrator (RTPROT_STATIC)",
        11 => "Zebra/Quagga",
        12 => "BIRD, and so Calico's confd+BIRD",
        16 => "DHCP clients",
        17 => "kube-router",
        18 => "keepalived",
        80 => "Calico's Felix",
        186..=192 => "FRR (bgpd, isisd, ospfd, ripd, ripng, nhrpd, eigrpd)",
        _ => return None,
    })
}

fn valid_node_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

fn valid_device_name(name: &str) -> bool {
    // IFNAMSIZ is 16 with the NUL; the kernel refuses '/', ':' and spaces.
    (1..=15).contains(&name.len())
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
        && name != "."
        && name != ".."
}

fn bad_password(p: &Option<Password>) -> bool {
    p.as_ref().is_some_and(|p| p.is_empty() || p.len() > 80)
}

/// Every semantic problem of `c`, section by section.
pub(super) fn problems(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    node(c, &mut out);
    if c.asn == 0 || c.asn == 23456 {
        out.push(Problem::ReservedAsn {
            what: "asn".to_owned(),
            asn: c.asn,
        });
    }
    if c.listen_port == 0 {
        out.push(Problem::PortZero {
            what: "listen-port",
            default: super::DEFAULT_BGP_PORT,
        });
    }
    pools_and_blocks(c, &mut out);
    tunnel(c, &mut out);
    peers(c, &mut out);
    timers_and_reflector(c, &mut out);
    let gr = &c.graceful_restart;
    if gr.enabled && !(1..=4095).contains(&gr.restart_time) {
        out.push(Problem::BadRestartTime(gr.restart_time));
    }
    if let Some(owner) = route_protocol_owner(c.route_protocol) {
        out.push(Problem::ReservedRouteProtocol {
            proto: c.route_protocol,
            owner,
        });
    }
    if c.admin.listen.port() == 0 {
        out.push(Problem::PortZero {
            what: "admin.listen",
            default: super::DEFAULT_ADMIN_PORT,
        });
    }
    super::cni::problems(c, &mut out);
    super::etcd::problems(c, &mut out);
    out
}

fn node(c: &Config, out: &mut Vec<Problem>) {
    if let Some(name) = &c.node.name
        && !valid_node_name(name)
    {
        out.push(Problem::BadNodeName(name.clone()));
    }
    if c.datastore() == DatastoreKind::Kubernetes {
        return kubernetes(c, out);
    }
    match (&c.node.address, &c.node.autodetect) {
        (Some(_), Some(_)) => out.push(Problem::AddressAndAutodetect),
        (None, None) => out.push(Problem::NoAddress),
        (None, Some(Autodetect::Interface(i))) if i.trim().is_empty() => {
            out.push(Problem::EmptyInterfacePattern)
        }
        _ => {}
    }
}

/// `datastore: kubernetes`: what each node learns from its Node object
/// must not be in the (shared) file.
fn kubernetes(c: &Config, out: &mut Vec<Problem>) {
    let set: [(&'static str, bool); 6] = [
        ("blocks", !c.blocks.is_empty()),
        ("mesh.peers", !c.mesh.peers.is_empty()),
        ("node.address", c.node.address.is_some()),
        ("node.autodetect", c.node.autodetect.is_some()),
        ("tunnel.address", c.tunnel.address.is_some()),
        ("route-reflector", c.route_reflector.is_some()),
    ];
    for (key, present) in set {
        if present {
            out.push(Problem::SetByKubernetes { key });
        }
    }
}

fn pools_and_blocks(c: &Config, out: &mut Vec<Problem>) {
    if c.pools.is_empty() {
        out.push(Problem::NoPools);
    }
    for (i, p) in c.pools.iter().enumerate() {
        let network = network_of(&p.cidr);
        if network != p.cidr {
            out.push(Problem::NotNetworkAddress {
                what: format!("pools[{i}].cidr"),
                value: p.cidr,
                network,
            });
        }
        for q in &c.pools[i + 1..] {
            if overlaps(&p.cidr, &q.cidr) {
                out.push(Problem::OverlappingPools {
                    a: p.cidr,
                    b: q.cidr,
                });
            }
        }
        let max = if p.cidr.is_ipv4() { 32 } else { 128 };
        if let Some(size) = p
            .block_size
            .filter(|s| !(p.cidr.prefix()..=max).contains(s))
        {
            out.push(Problem::BadBlockSize {
                pool: p.cidr,
                size,
                min: p.cidr.prefix(),
                max,
            });
        }
        let pool = p.pool();
        if pool.cidr.is_ipv6() && pool.ipip_mode != IpipMode::Never {
            out.push(Problem::Ipv6PoolWithIpip {
                cidr: pool.cidr,
                mode: ModeName(pool.ipip_mode),
            });
        }
    }
    for (i, b) in c.blocks.iter().enumerate() {
        let network = network_of(b);
        if network != *b {
            out.push(Problem::NotNetworkAddress {
                what: format!("blocks[{i}]"),
                value: *b,
                network,
            });
        }
        if !c.pools.is_empty() && !c.pools.iter().any(|p| inside(b, &p.cidr)) {
            out.push(Problem::BlockOutsidePools(*b));
        }
        for other in &c.blocks[i + 1..] {
            if overlaps(b, other) {
                out.push(Problem::OverlappingBlocks { a: *b, b: *other });
            }
        }
    }
}

fn tunnel(c: &Config, out: &mut Vec<Problem>) {
    let t = &c.tunnel;
    if !valid_device_name(&t.device) {
        out.push(Problem::BadDeviceName(t.device.clone()));
    }
    if t.mtu != 0 && !(68..=65515).contains(&t.mtu) {
        out.push(Problem::MtuOutOfRange(t.mtu));
    }
    if !t.bpf_pin_root.is_absolute() {
        out.push(Problem::RelativeBpfPinRoot(t.bpf_pin_root.clone()));
    }
    if let Some(a) = t.address
        && !c.pools.iter().any(|p| match p.cidr {
            IpNetwork::V4(n) => n.contains(a),
            IpNetwork::V6(_) => false,
        })
    {
        out.push(Problem::TunnelAddressOutsidePools(a));
    }
}

fn timers_and_reflector(c: &Config, out: &mut Vec<Problem>) {
    if matches!(c.hold_time, 1 | 2) {
        out.push(Problem::BadHoldTime(c.hold_time));
    }
    if c.connect_retry == 0 {
        out.push(Problem::ZeroConnectRetry);
    }
    if let Some(k) = c.keepalive_time
        && c.hold_time > 0
        && k >= c.hold_time
    {
        out.push(Problem::KeepaliveNotBelowHold {
            keepalive: k,
            hold: c.hold_time,
        });
    }
    let Some(rr) = &c.route_reflector else {
        return;
    };
    if rr.cluster_id.is_unspecified() {
        out.push(Problem::ZeroClusterId);
    }
    for (i, range) in rr.clients.iter().enumerate() {
        let network = network_of(&range.prefix);
        if network != range.prefix {
            out.push(Problem::ClientRangeNotNetwork {
                value: range.prefix,
                network,
            });
        }
        if range.limit == 0 {
            out.push(Problem::ClientLimitZero(range.prefix));
        }
        if bad_password(&range.password) {
            out.push(Problem::BadPassword {
                what: format!("route-reflector.clients[{i}] ({})", range.prefix),
            });
        }
    }
}

fn peers(c: &Config, out: &mut Vec<Problem>) {
    let me = c.node.address.map(|a| IpAddr::V4(a.ip()));
    let mut seen = BTreeSet::new();
    for &addr in &c.mesh.peers {
        if addr.is_ipv6() {
            out.push(Problem::Ipv6MeshPeer(addr));
        }
        if Some(addr) == me {
            out.push(Problem::PeerIsThisNode {
                list: PeerList::Mesh,
                addr,
            });
        }
        if !seen.insert(addr) {
            out.push(Problem::DuplicatePeer {
                list: PeerList::Mesh,
                addr,
            });
        }
    }
    if bad_password(&c.mesh.password) {
        out.push(Problem::BadPassword {
            what: "mesh.password".to_owned(),
        });
    }
    for (i, p) in c.peers.iter().enumerate() {
        let addr = p.address;
        if Some(addr) == me {
            out.push(Problem::PeerIsThisNode {
                list: PeerList::Explicit,
                addr,
            });
        }
        if !seen.insert(addr) {
            out.push(Problem::DuplicatePeer {
                list: PeerList::Explicit,
                addr,
            });
        }
        if p.asn == 0 || p.asn == 23456 {
            out.push(Problem::ReservedAsn {
                what: format!("peers[{i}].asn"),
                asn: p.asn,
            });
        }
        if p.port == 0 {
            out.push(Problem::PortZero {
                what: "peers[].port",
                default: super::DEFAULT_BGP_PORT,
            });
        }
        if bad_password(&p.password) {
            out.push(Problem::BadPassword {
                what: format!("peers[{i}] ({addr})"),
            });
        }
        if p.ttl_security == Some(0) {
            out.push(Problem::TtlSecurityZero(addr));
        }
        if p.route_reflector_client && p.asn != c.asn {
            out.push(Problem::ReflectorClientNotIbgp {
                addr,
                asn: p.asn,
                local: c.asn,
            });
        }
        if let Some(m) = &p.max_prefixes
            && (m.limit == 0 || m.warn_percent.is_some_and(|w| w > 100))
        {
            out.push(Problem::BadMaxPrefixes(addr));
        }
        if let Some(local) = p.local_address
            && local.is_ipv4() != addr.is_ipv4()
        {
            out.push(Problem::LocalAddressFamily { addr, local });
        }
    }
}

/// Things that work but are probably not meant.
pub(super) fn warnings(c: &Config) -> Vec<Warning> {
    let mut out = Vec::new();
    if let Some(a) = c.node.address
        && a.prefix() == 32
    {
        out.push(Warning::HostPrefixNodeAddress(a));
    }
    for p in c.peers.iter().filter(|p| p.asn != c.asn) {
        if p.import.is_none() {
            out.push(Warning::EbgpWithoutPolicy {
                addr: p.address,
                missing: "import",
                verb: "accepted",
            });
        }
        if p.export.is_none() {
            out.push(Warning::EbgpWithoutPolicy {
                addr: p.address,
                missing: "export",
                verb: "sent",
            });
        }
    }
    out
}
