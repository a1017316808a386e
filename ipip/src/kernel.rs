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
//! [`Handle`] is a thin handle over the netlink crate's rtnetlink control
//! handle ([`netlink::Control`]) whose verbs mirror `ip link` / `ip addr`;
//! each names the equivalent command, and its errors say which command
//! failed ([`IpCommand`]) and the kernel's errno.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use netlink::link::{self, LinkFlags, LinkMessage};
use netlink::{Control, Errno};

/// The kind of a link (`ip -d link show`): netlink-packet-route's enum,
/// `None` for a link without one.
pub use netlink::link::InfoKind;

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
        /// What the kernel said (`EOPNOTSUPP`).
        source: netlink::Error,
    },
    /// A device of that name exists but is not an IPIP tunnel (for example the
    /// userspace data plane's TUN device).
    #[error(
        "{device} exists but is a {} device, not ipip; delete it or pick another name",
        link::kind_name(.kind)
    )]
    NotIpip {
        /// The device name.
        device: String,
        /// Its kind as the kernel reports it (`Some(InfoKind::Tun)` for a
        /// TUN device, `None` for a device without one).
        kind: Option<InfoKind>,
    },
    /// The configured MTU does not fit the device.
    #[error("MTU {mtu} for {device} is out of range (the kernel refused it: {source})")]
    BadMtu {
        /// The device name.
        device: String,
        /// The MTU we asked for.
        mtu: u32,
        /// What the kernel said (`EINVAL`).
        source: netlink::Error,
    },
    /// Anything else the kernel refused, with the `ip` command it stands for.
    #[error("`{command}` failed: {source}")]
    Netlink {
        /// The equivalent `ip` command.
        command: IpCommand,
        /// The kernel's error.
        source: netlink::Error,
    },
}

/// The `ip` command a [`Handle`] verb stands for, to name a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpCommand {
    /// Opening the netlink connection.
    Open,
    /// `ip link show dev DEVICE`.
    LinkShow {
        /// The device.
        device: String,
    },
    /// `ip link show`.
    LinkShowAll,
    /// `ip link add DEVICE type ipip`.
    LinkAddIpip {
        /// The device.
        device: String,
    },
    /// `ip link set dev DEVICE mtu MTU up`.
    LinkSetMtuUp {
        /// The device.
        device: String,
        /// The MTU.
        mtu: u32,
    },
    /// `ip -4 addr show dev DEVICE`.
    AddrShow {
        /// The device.
        device: String,
    },
    /// `ip addr add ADDRESS/LEN dev DEVICE`.
    AddrAdd {
        /// The device.
        device: String,
        /// The address.
        address: Ipv4Addr,
        /// Its prefix length.
        len: u8,
    },
    /// `ip addr del ADDRESS/LEN dev DEVICE`.
    AddrDel {
        /// The device.
        device: String,
        /// The address.
        address: Ipv4Addr,
        /// Its prefix length.
        len: u8,
    },
}

impl fmt::Display for IpCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => write!(f, "socket(NETLINK_ROUTE)"),
            Self::LinkShow { device } => write!(f, "ip link show dev {device}"),
            Self::LinkShowAll => write!(f, "ip link show"),
            Self::LinkAddIpip { device } => write!(f, "ip link add {device} type ipip"),
            Self::LinkSetMtuUp { device, mtu } => {
                write!(f, "ip link set dev {device} mtu {mtu} up")
            }
            Self::AddrShow { device } => write!(f, "ip -4 addr show dev {device}"),
            Self::AddrAdd {
                device,
                address,
                len,
            } => write!(f, "ip addr add {address}/{len} dev {device}"),
            Self::AddrDel {
                device,
                address,
                len,
            } => write!(f, "ip addr del {address}/{len} dev {device}"),
        }
    }
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
    let mut nl = Handle::open()?;
    let dev = &config.device;
    let (link, created) = match nl.link_get(dev)? {
        Some(link) => (link, false),
        None => {
            nl.link_add_ipip(dev)?;
            let link = nl.link_get(dev)?.ok_or_else(|| KernelError::Netlink {
                command: IpCommand::LinkShow {
                    device: dev.clone(),
                },
                source: netlink::Error::Kernel(Errno::NoDevice),
            })?;
            (link, true)
        }
    };
    let kind = link_kind(&link);
    if kind != Some(InfoKind::IpIp) {
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
    nl: &mut Handle,
    name: &str,
    index: u32,
    mtu: u32,
    address: Ipv4Addr,
) -> Result<Vec<(Ipv4Addr, u8)>, KernelError> {
    nl.link_set_mtu_up(name, index, mtu)?;
    let mut removed = Vec::new();
    let mut present = false;
    for (addr, len) in nl.addr_list(name, index)? {
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

/// The kind of a link (`ip -d link show`: ipip, tun, veth); `None` for a
/// link without one.
pub fn link_kind(link: &LinkMessage) -> Option<InfoKind> {
    link::kind(link)
}

/// Calico's underlay MTU: the smallest MTU among the up, non-loopback
/// interfaces other than the tunnel (`skip`), or [`FALLBACK_UNDERLAY_MTU`].
pub fn underlay_mtu(links: &[LinkMessage], skip: u32) -> u32 {
    links
        .iter()
        .filter(|l| l.header.index != skip)
        .filter(|l| l.header.flags.contains(LinkFlags::Up))
        .filter(|l| !l.header.flags.contains(LinkFlags::Loopback))
        .filter(|l| link_kind(l) != Some(InfoKind::IpIp))
        .filter_map(link::mtu)
        .min()
        .unwrap_or(FALLBACK_UNDERLAY_MTU)
}

/// The kernel's links and addresses, over rtnetlink; verbs mirror `ip`.
#[derive(Debug)]
pub struct Handle {
    control: Control,
}

impl Handle {
    /// Opens a connection in the current network namespace.
    ///
    /// # Errors
    /// [`KernelError::Netlink`] when the connection cannot be made.
    pub fn open() -> Result<Handle, KernelError> {
        let control = Control::open().map_err(|source| KernelError::Netlink {
            command: IpCommand::Open,
            source,
        })?;
        Ok(Handle { control })
    }

    /// `ip link show dev NAME`; `None` if there is no such device.
    ///
    /// # Errors
    /// Any other refusal, naming the command.
    pub fn link_get(&mut self, name: &str) -> Result<Option<LinkMessage>, KernelError> {
        self.control
            .link(name)
            .map_err(|source| KernelError::Netlink {
                command: IpCommand::LinkShow {
                    device: name.into(),
                },
                source,
            })
    }

    /// `ip link show`: every link in the namespace.
    ///
    /// # Errors
    /// When the dump fails, naming the command.
    pub fn link_dump(&mut self) -> Result<Vec<LinkMessage>, KernelError> {
        self.control.links().map_err(|source| KernelError::Netlink {
            command: IpCommand::LinkShowAll,
            source,
        })
    }

    /// `ip link add NAME type ipip`: no local, no remote, like the fallback
    /// device.
    ///
    /// # Errors
    /// `EOPNOTSUPP` (the kernel found no "ipip" link kind, even after trying
    /// to load the module) is [`KernelError::NoIpipSupport`].
    pub fn link_add_ipip(&mut self, name: &str) -> Result<(), KernelError> {
        match self.control.add_ipip(name) {
            Ok(()) => Ok(()),
            Err(source) if source.errno() == Some(Errno::NotSupported) => {
                Err(KernelError::NoIpipSupport {
                    device: name.into(),
                    source,
                })
            }
            Err(source) => Err(KernelError::Netlink {
                command: IpCommand::LinkAddIpip {
                    device: name.into(),
                },
                source,
            }),
        }
    }

    /// `ip link set dev NAME mtu MTU up`.
    ///
    /// # Errors
    /// `EINVAL` is [`KernelError::BadMtu`].
    pub fn link_set_mtu_up(&mut self, name: &str, index: u32, mtu: u32) -> Result<(), KernelError> {
        match self.control.set_mtu_up(index, mtu) {
            Ok(()) => Ok(()),
            Err(source) if source.errno() == Some(Errno::Invalid) => Err(KernelError::BadMtu {
                device: name.into(),
                mtu,
                source,
            }),
            Err(source) => Err(KernelError::Netlink {
                command: IpCommand::LinkSetMtuUp {
                    device: name.into(),
                    mtu,
                },
                source,
            }),
        }
    }

    /// `ip -4 addr show dev NAME` (index `index`): (address, prefix length)
    /// pairs.
    ///
    /// # Errors
    /// When the dump fails, naming the command.
    pub fn addr_list(
        &mut self,
        name: &str,
        index: u32,
    ) -> Result<Vec<(Ipv4Addr, u8)>, KernelError> {
        self.control
            .ipv4_addresses(index)
            .map_err(|source| KernelError::Netlink {
                command: IpCommand::AddrShow {
                    device: name.into(),
                },
                source,
            })
    }

    /// `ip addr add ADDR/LEN dev NAME`.
    ///
    /// # Errors
    /// Any refusal, naming the command.
    pub fn addr_add(
        &mut self,
        name: &str,
        index: u32,
        addr: Ipv4Addr,
        len: u8,
    ) -> Result<(), KernelError> {
        self.control
            .add_address(index, IpAddr::V4(addr), len)
            .map_err(|source| KernelError::Netlink {
                command: IpCommand::AddrAdd {
                    device: name.into(),
                    address: addr,
                    len,
                },
                source,
            })
    }

    /// `ip addr del ADDR/LEN dev NAME`.
    ///
    /// # Errors
    /// Any refusal, naming the command.
    pub fn addr_del(
        &mut self,
        name: &str,
        index: u32,
        addr: Ipv4Addr,
        len: u8,
    ) -> Result<(), KernelError> {
        self.control
            .del_address(index, addr, len)
            .map_err(|source| KernelError::Netlink {
                command: IpCommand::AddrDel {
                    device: name.into(),
                    address: addr,
                    len,
                },
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink::link::{LinkAttribute, LinkInfo};

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
            source: netlink::Error::Kernel(Errno::NotSupported),
        };
        let text = e.to_string();
        assert!(text.contains("no IPIP support"), "{text}");
        assert!(text.contains("ipip-tunnel --device tunl0"), "{text}");
    }

    #[test]
    fn link_kind_reads_link_info() {
        assert_eq!(
            link_kind(&link(1, LinkFlags::Up, 1480, Some(InfoKind::IpIp))),
            Some(InfoKind::IpIp)
        );
        assert_eq!(link_kind(&link(1, LinkFlags::Up, 1500, None)), None);
    }

    #[test]
    fn not_ipip_names_the_kind_as_ip_does() {
        let e = KernelError::NotIpip {
            device: "tunl0".into(),
            kind: Some(InfoKind::Tun),
        };
        assert_eq!(
            e.to_string(),
            "tunl0 exists but is a tun device, not ipip; delete it or pick another name"
        );
        let e = KernelError::NotIpip {
            device: "tunl0".into(),
            kind: None,
        };
        assert!(e.to_string().contains("is a none device"), "{e}");
    }

    #[test]
    fn a_failed_command_is_named_as_ip_would_run_it() {
        let e = KernelError::Netlink {
            command: IpCommand::AddrAdd {
                device: "tunl0".into(),
                address: Ipv4Addr::new(10, 244, 1, 1),
                len: 32,
            },
            source: netlink::Error::Kernel(Errno::Exists),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("`ip addr add 10.244.1.1/32 dev tunl0` failed: "),
            "{text}"
        );
        assert!(text.contains("EEXIST"), "{text}");
    }
}
