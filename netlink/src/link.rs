//! Links and addresses: netlink-packet-route's message types
//! (`LinkMessage`, `AddressMessage`), read through the few helpers the
//! workspace needs, and the interface table the FIB names devices with.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

pub use netlink_packet_route::address::{AddressAttribute, AddressMessage};
pub use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};

/// The name of a link (`IFLA_IFNAME`).
pub fn name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

/// The MTU of a link (`IFLA_MTU`).
pub fn mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// The kind of a link (`IFLA_INFO_KIND`, `ip -d link show`: ipip, tun,
/// veth, …); `None` for a link without one (a physical device, `lo`).
pub fn kind(link: &LinkMessage) -> Option<InfoKind> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.clone()),
            _ => None,
        }),
        _ => None,
    })
}

/// A link kind as `ip -d link show` names it, `none` for a link without
/// one.
pub fn kind_name(kind: &Option<InfoKind>) -> impl fmt::Display + '_ {
    struct Name<'a>(&'a Option<InfoKind>);
    impl fmt::Display for Name<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Some(kind) => write!(f, "{kind}"),
                None => f.write_str("none"),
            }
        }
    }
    Name(kind)
}

/// The address of an address message: `IFA_LOCAL` (the interface's own
/// address; on point-to-point links `IFA_ADDRESS` is the peer's), else
/// `IFA_ADDRESS`.
pub fn address(message: &AddressMessage) -> Option<IpAddr> {
    let attribute = |local: bool| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    attribute(true).or_else(|| attribute(false))
}

/// Interface names ↔ indexes, as one link dump saw them
/// (`ip -o link show`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    by_name: HashMap<String, u32>,
    by_index: HashMap<u32, String>,
}

impl Links {
    /// Links from `(name, index)` pairs.
    pub fn from_pairs<S: Into<String>>(pairs: impl IntoIterator<Item = (S, u32)>) -> Self {
        let mut links = Self::default();
        for (name, index) in pairs {
            let name = name.into();
            links.by_index.insert(index, name.clone());
            links.by_name.insert(name, index);
        }
        links
    }

    /// Links from the messages of a link dump.
    pub fn from_messages<'a>(messages: impl IntoIterator<Item = &'a LinkMessage>) -> Self {
        Self::from_pairs(
            messages
                .into_iter()
                .filter_map(|m| Some((name(m)?, m.header.index))),
        )
    }

    /// The index of interface `name` (`if_nametoindex`).
    pub fn index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name of interface `index`.
    pub fn name(&self, index: u32) -> Option<&str> {
        self.by_index.get(&index).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, kind: Option<InfoKind>) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.attributes.push(LinkAttribute::IfName(name.into()));
        l.attributes.push(LinkAttribute::Mtu(1480));
        if let Some(k) = kind {
            l.attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(k)]));
        }
        l
    }

    #[test]
    fn link_kind_reads_link_info_and_names_a_missing_one_none() {
        let tunl = link(1, "tunl0", Some(InfoKind::IpIp));
        assert_eq!(kind(&tunl), Some(InfoKind::IpIp));
        assert_eq!(kind_name(&kind(&tunl)).to_string(), "ipip");
        let eth = link(2, "eth0", None);
        assert_eq!(kind(&eth), None);
        assert_eq!(kind_name(&kind(&eth)).to_string(), "none");
        assert_eq!((name(&eth), mtu(&eth)), (Some("eth0"), Some(1480)));
    }

    #[test]
    fn links_map_names_and_indexes_both_ways() {
        let links = Links::from_messages(&[link(2, "eth0", None), link(7, "tunl0", None)]);
        assert_eq!(links.index("tunl0"), Some(7));
        assert_eq!(links.name(2), Some("eth0"));
        assert_eq!(links.index("nosuch0"), None);
    }

    #[test]
    fn an_address_is_its_local_attribute_first() {
        let mut m = AddressMessage::default();
        m.attributes
            .push(AddressAttribute::Address("10.0.0.2".parse().unwrap()));
        assert_eq!(address(&m), Some("10.0.0.2".parse().unwrap()));
        m.attributes
            .push(AddressAttribute::Local("10.0.0.1".parse().unwrap()));
        assert_eq!(address(&m), Some("10.0.0.1".parse().unwrap()));
    }
}
