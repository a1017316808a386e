//! The kernel backend: managing the kernel's IPIP device (`tunl0`) over
//! rtnetlink, the way Calico's Felix does.
//!
//! [`ensure_tunnel`] makes the device exist (the kernel's fallback device,
//! created by name only: no local, no remote), be up, have MTU = underlay
//! MTU − 20 unless configured, and carry exactly the configured /32 tunnel
//! address. On a kernel without the ipip module it returns
//! [`KernelError::NoIpipSupport`], which names the userspace fallback
//! (`ipip-tunnel`, [`crate::userspace`]).
//!
//! [`Netlink`] is a thin handle whose verbs mirror `ip link` / `ip addr`;
//! each names the equivalent command.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The kernel's fallback IPIP device in every namespace.
pub const DEFAULT_DEVICE: &str = "tunl0";

/// IPv4 header without options: what IPIP adds to every packet (RFC 2003 §3).
pub const IPIP_OVERHEAD: u32 = 20;

/// Calico's host MTU when no interface qualifies (Felix `int_dataplane.go`).
pub const FALLBACK_UNDERLAY_MTU: u32 = 1460;

/// Errors from the kernel backend, by what the caller does about them.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The running kernel cannot create IPIP devices.
    #[error(
        "this kernel has no IPIP support (creating {device} of type ipip failed: {source}); \
         load the ipip module (modprobe ipip) or use the userspace data plane instead: \
         run `ipip-tunnel --device {device} --local NODE_IP`"
    )]
    NoIpipSupport {
        /// The device we tried to create.
        device: String,
        /// What the kernel said (usually EOPNOTSUPP).
        source: io::Error,
    },
    /// A device of that name exists but is not an IPIP tunnel (for example the
    /// userspace data plane's TUN device).
    #[error("{device} exists but is a {kind} device, not ipip; delete it or pick another name")]
    NotIpip {
        /// The device name.
        device: String,
        /// Its kind as the kernel reports it ("tun", "none" for no kind...).
        kind: String,
    },
    /// The configured MTU does not fit the device.
    #[error("MTU {mtu} for {device} is out of range (the kernel refused it: {source})")]
    BadMtu {
        /// The device name.
        device: String,
        /// The MTU we asked for.
        mtu: u32,
        /// What the kernel said (EINVAL).
        source: io::Error,
    },
    /// Anything else the kernel refused, with the `ip` command it stands for.
    #[error("`{command}` failed: {source}")]
    Netlink {
        /// The equivalent `ip` command.
        command: String,
        /// The kernel's error.
        source: io::Error,
    },
}

/// What [`ensure_tunnel`] makes true.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    /// The device name, [`DEFAULT_DEVICE`] by default.
    pub device: String,
    /// The node's tunnel address, assigned as a /32.
    pub address: Ipv4Addr,
    /// The device MTU; `None` means underlay MTU − 20.
    pub mtu: Option<u32>,
    /// The underlay MTU; `None` means the smallest MTU of the namespace's
    /// other up, non-loopback interfaces (Calico's rule), or
    /// [`FALLBACK_UNDERLAY_MTU`] if there are none.
    pub underlay_mtu: Option<u32>,
}

impl TunnelConfig {
    /// `tunl0` with the given /32 and the MTU derived from the underlay.
    pub fn new(address: Ipv4Addr) -> TunnelConfig {
        TunnelConfig {
            device: DEFAULT_DEVICE.to_string(),
            address,
            mtu: None,
            underlay_mtu: None,
        }
    }
}

/// What the device looks like after [`ensure_tunnel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelState {
    /// Interface index.
    pub index: u32,
    /// The MTU now set.
    pub mtu: u32,
    /// Whether we had to create the device.
    pub created: bool,
    /// Addresses removed because they were not the configured /32.
    pub removed: Vec<(Ipv4Addr, u8)>,
}

/// Makes the IPIP device match `config` (idempotent):
///
/// ```text
/// ip link add tunl0 type ipip          # only if absent
/// ip link set dev tunl0 mtu M up
/// ip addr add A/32 dev tunl0           # and `ip addr del` every other IPv4 address
/// ```
pub fn ensure_tunnel(config: &TunnelConfig) -> Result<TunnelState, KernelError> {
    let mut nl = Netlink::open().map_err(|source| KernelError::Netlink {
        command: "socket(NETLINK_ROUTE)".into(),
        source,
    })?;
    let dev = &config.device;
    let (link, created) = match nl.link_get(dev)? {
        Some(link) => (link, false),
        None => {
            nl.link_add_ipip(dev)?;
            let link = nl.link_get(dev)?.ok_or_else(|| KernelError::Netlink {
                command: format!("ip link show dev {dev}"),
                source: io::Error::from_raw_os_error(libc::ENODEV),
            })?;
            (link, true)
        }
    };
    let kind = link_kind(&link);
    if kind != "ipip" {
        return Err(KernelError::NotIpip {
            device: dev.clone(),
            kind,
        });
    }
    let index = link.header.index;
    let mtu = match config.mtu {
        Some(m) => m,
        None => {
            let underlay = match config.underlay_mtu {
                Some(u) => u,
                None => underlay_mtu(&nl.link_dump()?, index),
            };
            underlay.saturating_sub(IPIP_OVERHEAD)
        }
    };
    let removed = configure_device(&mut nl, dev, index, mtu, config.address)?;
    Ok(TunnelState {
        index,
        mtu,
        created,
        removed,
    })
}

/// Makes device `name` (index `index`) up with MTU `mtu` and exactly the
/// IPv4 address `address`/32, removing any other; returns the addresses
/// removed. What [`ensure_tunnel`] does to the kernel's tunl0, and what
/// the userspace data plane's TUN device of the same name needs too.
///
/// ```text
/// ip link set dev NAME mtu MTU up
/// ip addr add ADDRESS/32 dev NAME     # and `ip addr del` every other one
/// ```
pub fn configure_device(
    nl: &mut Netlink,
    name: &str,
    index: u32,
    mtu: u32,
    address: Ipv4Addr,
) -> Result<Vec<(Ipv4Addr, u8)>, KernelError> {
    nl.link_set_mtu_up(name, index, mtu)?;
    let mut removed = Vec::new();
    let mut present = false;
    for (addr, len) in nl.addr_list(index)? {
        if addr == address && len == 32 {
            present = true;
        } else {
            nl.addr_del(name, index, addr, len)?;
            removed.push((addr, len));
        }
    }
    if !present {
        nl.addr_add(name, index, address, 32)?;
    }
    Ok(removed)
}

/// The kind of a link (`ip -d link show`: "ipip", "tun", "veth"), or "none".
pub fn link_kind(link: &LinkMessage) -> String {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Kind(k) => Some(k.to_string()),
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or_else(|| "none".into())
}

fn link_mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// Calico's underlay MTU: the smallest MTU among the up, non-loopback
/// interfaces other than the tunnel (`skip`), or [`FALLBACK_UNDERLAY_MTU`].
pub fn underlay_mtu(links: &[LinkMessage], skip: u32) -> u32 {
    links
        .iter()
        .filter(|l| l.header.index != skip)
        .filter(|l| l.header.flags.contains(LinkFlags::Up))
        .filter(|l| !l.header.flags.contains(LinkFlags::Loopback))
        .filter(|l| link_kind(l) != "ipip")
        .filter_map(link_mtu)
        .min()
        .unwrap_or(FALLBACK_UNDERLAY_MTU)
}

/// A route netlink socket with request/ack plumbing; verbs mirror `ip`.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket in the current namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.set_ext_ack(true).ok();
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends one request and collects the replies until the ack (or the end
    /// of a dump). A kernel error comes back as an `io::Error` with its errno.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msg = NetlinkMessage::from(message);
        msg.header.flags = NLM_F_REQUEST | flags;
        msg.header.sequence_number = seq;
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.sock.send_to(&buf, &SocketAddr::new(0, 0), 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut offset = 0;
            while let Some(rest) = data.get(offset..).filter(|r| !r.is_empty()) {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = usize::try_from(msg.header.length).unwrap_or(0);
                if len == 0 {
                    break;
                }
                // Netlink messages are 4-byte aligned.
                offset = offset.saturating_add(len.saturating_add(3) & !3);
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    // An ack ends a plain request; only Done ends a dump.
                    NetlinkPayload::Error(_) if !dump => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => {
                        replies.push(m);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// `ip link show dev NAME`; `None` if there is no such device.
    pub fn link_get(&mut self, name: &str) -> Result<Option<LinkMessage>, KernelError> {
        let mut req = LinkMessage::default();
        req.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(RouteNetlinkMessage::GetLink(req), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(source) => Err(KernelError::Netlink {
                command: format!("ip link show dev {name}"),
                source,
            }),
        }
    }

    /// `ip link show`: every link in the namespace.
    pub fn link_dump(&mut self) -> Result<Vec<LinkMessage>, KernelError> {
        let replies = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_DUMP,
            )
            .map_err(|source| KernelError::Netlink {
                command: "ip link show".into(),
                source,
            })?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    /// `ip link add NAME type ipip`: no local, no remote, like the fallback
    /// device. EOPNOTSUPP (the kernel found no "ipip" link kind, even after
    /// trying to load the module) becomes [`KernelError::NoIpipSupport`].
    pub fn link_add_ipip(&mut self, name: &str) -> Result<(), KernelError> {
        let mut req = LinkMessage::default();
        req.attributes.push(LinkAttribute::IfName(name.into()));
        req.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::IpIp,
            )]));
        match self.request(
            RouteNetlinkMessage::NewLink(req),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(()),
            Err(source) if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                Err(KernelError::NoIpipSupport {
                    device: name.into(),
                    source,
                })
            }
            Err(source) => Err(KernelError::Netlink {
                command: format!("ip link add {name} type ipip"),
                source,
            }),
        }
    }

    /// `ip link set dev NAME mtu MTU up`.
    pub fn link_set_mtu_up(&mut self, name: &str, index: u32, mtu: u32) -> Result<(), KernelError> {
        let mut req = LinkMessage::default();
        req.header.index = index;
        req.header.flags = LinkFlags::Up;
        req.header.change_mask = LinkFlags::Up;
        req.attributes.push(LinkAttribute::Mtu(mtu));
        match self.request(RouteNetlinkMessage::SetLink(req), NLM_F_ACK) {
            Ok(_) => Ok(()),
            Err(source) if source.raw_os_error() == Some(libc::EINVAL) => {
                Err(KernelError::BadMtu {
                    device: name.into(),
                    mtu,
                    source,
                })
            }
            Err(source) => Err(KernelError::Netlink {
                command: format!("ip link set dev {name} mtu {mtu} up"),
                source,
            }),
        }
    }

    /// `ip -4 addr show dev INDEX`: (address, prefix length) pairs.
    pub fn addr_list(&mut self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, KernelError> {
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let replies = self
            .request(RouteNetlinkMessage::GetAddress(req), NLM_F_DUMP)
            .map_err(|source| KernelError::Netlink {
                command: "ip -4 addr show".into(),
                source,
            })?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => Some(a),
                _ => None,
            })
            .filter_map(|a| {
                let len = a.header.prefix_len;
                a.attributes.into_iter().find_map(|attr| match attr {
                    AddressAttribute::Local(IpAddr::V4(v4)) => Some((v4, len)),
                    _ => None,
                })
            })
            .collect())
    }

    fn addr_message(index: u32, addr: Ipv4Addr, len: u8) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = len;
        msg.header.index = index;
        msg.header.scope = AddressScope::Universe;
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::V4(addr)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
        msg
    }

    /// `ip addr add ADDR/LEN dev NAME`.
    pub fn addr_add(
        &mut self,
        name: &str,
        index: u32,
        addr: Ipv4Addr,
        len: u8,
    ) -> Result<(), KernelError> {
        let req = Self::addr_message(index, addr, len);
        self.request(
            RouteNetlinkMessage::NewAddress(req),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|source| KernelError::Netlink {
            command: format!("ip addr add {addr}/{len} dev {name}"),
            source,
        })
    }

    /// `ip addr del ADDR/LEN dev NAME`.
    pub fn addr_del(
        &mut self,
        name: &str,
        index: u32,
        addr: Ipv4Addr,
        len: u8,
    ) -> Result<(), KernelError> {
        let req = Self::addr_message(index, addr, len);
        self.request(RouteNetlinkMessage::DelAddress(req), NLM_F_ACK)
            .map(drop)
            .map_err(|source| KernelError::Netlink {
                command: format!("ip addr del {addr}/{len} dev {name}"),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, flags: LinkFlags, mtu: u32, kind: Option<InfoKind>) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.flags = flags;
        l.attributes.push(LinkAttribute::Mtu(mtu));
        if let Some(k) = kind {
            l.attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(k)]));
        }
        l
    }

    #[test]
    fn underlay_mtu_is_smallest_up_non_loopback_non_tunnel() {
        let links = [
            link(1, LinkFlags::Up | LinkFlags::Loopback, 65536, None),
            link(2, LinkFlags::Up, 9000, None),
            link(3, LinkFlags::Up, 1500, Some(InfoKind::Veth)),
            link(4, LinkFlags::empty(), 1200, None),
            link(5, LinkFlags::Up, 1480, Some(InfoKind::IpIp)),
        ];
        assert_eq!(underlay_mtu(&links, 5), 1500);
        assert_eq!(underlay_mtu(&links[..1], 5), FALLBACK_UNDERLAY_MTU);
    }

    #[test]
    fn no_ipip_support_names_the_userspace_fallback() {
        let e = KernelError::NoIpipSupport {
            device: "tunl0".into(),
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        };
        let text = e.to_string();
        assert!(text.contains("no IPIP support"), "{text}");
        assert!(text.contains("ipip-tunnel --device tunl0"), "{text}");
    }

    #[test]
    fn link_kind_reads_link_info() {
        assert_eq!(
            link_kind(&link(1, LinkFlags::Up, 1480, Some(InfoKind::IpIp))),
            "ipip"
        );
        assert_eq!(link_kind(&link(1, LinkFlags::Up, 1500, None)), "none");
    }
}
