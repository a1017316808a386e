//! Node address autodetection (Calico's `interface=` and `can-reach=`),
//! over an injected list of interface addresses so it runs without a
//! kernel.

use std::net::Ipv4Addr;

use ipnetwork::{IpNetwork, Ipv4Network};

use super::Autodetect;

/// One address of one interface, as `ip -o addr` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The interface (`eth0`).
    pub interface: String,
    /// The address with its prefix length (`10.0.0.5/24`).
    pub address: IpNetwork,
}

/// Autodetection found nothing usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    /// No interface matching the pattern holds a usable IPv4 address.
    #[error(
        "no interface matching `{0}` has a usable IPv4 address (loopback and link-local are skipped) — check `ip -4 addr` and node.autodetect.interface"
    )]
    NoAddressOnInterface(String),
    /// The kernel has no route towards the target.
    #[error("no route to {0} — check node.autodetect.can-reach and `ip route get {0}`")]
    NoRoute(Ipv4Addr),
    /// The source address towards the target is on no listed interface.
    #[error(
        "the source address {0} towards the can-reach target is on no interface — set node.address explicitly"
    )]
    SourceNotOnInterface(Ipv4Addr),
}

/// A shell-style glob with `*` and `?`.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob(rest, name) || name.split_first().is_some_and(|(_, n)| glob(pattern, n))
        }
        (Some((b'?', p)), Some((_, n))) => glob(p, n),
        (Some((pc, p)), Some((nc, n))) => pc == nc && glob(p, n),
        _ => false,
    }
}

fn usable(a: &Ipv4Network) -> bool {
    !a.ip().is_loopback() && !a.ip().is_link_local() && !a.ip().is_unspecified()
}

/// Finds the node address with its interface's prefix length.
///
/// - `interface: GLOB`: the first usable IPv4 address, in `addrs` order,
///   on an interface whose name matches.
/// - `can-reach: T`: the address `source_towards(T)` returns (the kernel's
///   source address for a route to T, e.g. from a connected UDP socket),
///   with the prefix of the interface that holds it.
///
/// ```
/// use route_agent::config::{Autodetect, InterfaceAddress, detect_address};
/// let addrs = [InterfaceAddress { interface: "eth0".into(), address: "10.0.0.5/24".parse().unwrap() }];
/// let (dev, net) = detect_address(&Autodetect::Interface("eth*".into()), &addrs, |_| None).unwrap();
/// assert_eq!((dev.as_str(), net.to_string().as_str()), ("eth0", "10.0.0.5/24"));
/// ```
pub fn detect_address(
    method: &Autodetect,
    addrs: &[InterfaceAddress],
    source_towards: impl Fn(Ipv4Addr) -> Option<Ipv4Addr>,
) -> Result<(String, Ipv4Network), DetectError> {
    let v4 = addrs.iter().filter_map(|a| match a.address {
        IpNetwork::V4(n) if usable(&n) => Some((&a.interface, n)),
        _ => None,
    });
    match method {
        Autodetect::Interface(pattern) => v4
            .into_iter()
            .find(|(dev, _)| glob(pattern.as_bytes(), dev.as_bytes()))
            .map(|(dev, n)| (dev.clone(), n))
            .ok_or_else(|| DetectError::NoAddressOnInterface(pattern.clone())),
        Autodetect::CanReach(target) => {
            let source = source_towards(*target).ok_or(DetectError::NoRoute(*target))?;
            v4.into_iter()
                .find(|(_, n)| n.ip() == source)
                .map(|(dev, n)| (dev.clone(), n))
                .ok_or(DetectError::SourceNotOnInterface(source))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<InterfaceAddress> {
        [
            ("lo", "127.0.0.1/8"),
            ("eth0", "fe80::1/64"),
            ("eth0", "169.254.3.4/16"),
            ("eth0", "10.0.0.5/24"),
            ("ens5", "10.1.0.7/20"),
            ("docker0", "172.17.0.1/16"),
        ]
        .iter()
        .map(|(i, a)| InterfaceAddress {
            interface: (*i).into(),
            address: a.parse().unwrap(),
        })
        .collect()
    }

    fn by_interface(p: &str) -> Result<(String, Ipv4Network), DetectError> {
        detect_address(&Autodetect::Interface(p.into()), &addrs(), |_| None)
    }

    #[test]
    fn interface_detection_takes_first_usable_ipv4_with_its_prefix() {
        assert_eq!(
            by_interface("eth0").unwrap(),
            ("eth0".into(), "10.0.0.5/24".parse().unwrap())
        );
    }

    #[test]
    fn interface_detection_matches_globs() {
        assert_eq!(by_interface("en*").unwrap().0, "ens5");
        assert_eq!(by_interface("ens?").unwrap().0, "ens5");
        assert_eq!(by_interface("e*0").unwrap().0, "eth0");
    }

    #[test]
    fn interface_detection_skips_loopback_and_reports_no_match() {
        assert_eq!(
            by_interface("lo"),
            Err(DetectError::NoAddressOnInterface("lo".into()))
        );
        assert_eq!(
            by_interface("wlan*"),
            Err(DetectError::NoAddressOnInterface("wlan*".into()))
        );
    }

    #[test]
    fn can_reach_uses_source_address_and_its_interface_prefix() {
        let target: Ipv4Addr = "10.1.9.9".parse().unwrap();
        let got = detect_address(&Autodetect::CanReach(target), &addrs(), |t| {
            (t == target).then(|| "10.1.0.7".parse().unwrap())
        });
        assert_eq!(
            got.unwrap(),
            ("ens5".into(), "10.1.0.7/20".parse().unwrap())
        );
    }

    #[test]
    fn can_reach_without_route_or_with_foreign_source_fails() {
        let target: Ipv4Addr = "192.0.2.1".parse().unwrap();
        let m = Autodetect::CanReach(target);
        assert_eq!(
            detect_address(&m, &addrs(), |_| None),
            Err(DetectError::NoRoute(target))
        );
        let src: Ipv4Addr = "192.0.2.200".parse().unwrap();
        assert_eq!(
            detect_address(&m, &addrs(), |_| Some(src)),
            Err(DetectError::SourceNotOnInterface(src))
        );
    }
}
