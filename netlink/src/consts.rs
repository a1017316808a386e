//! Every netlink code point the workspace uses, each from the kernel's
//! UAPI header that defines it (the file is named above each group). No
//! other file in the workspace defines one.
//!
//! The `NLM_F_*` header flags are netlink-packet-core's, re-exported here so
//! that callers have one place to import from.

pub use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST,
};

// <linux/netlink.h>

/// `sizeof(struct nlmsghdr)`: length, type, flags, sequence, port.
pub const NLMSG_HDRLEN: usize = 16;
/// No operation; ignored.
pub const NLMSG_NOOP: u16 = 1;
/// `struct nlmsgerr`: an errno (0 for an ACK) and the request's header.
pub const NLMSG_ERROR: u16 = 2;
/// The end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `SOL_NETLINK` socket option: error replies echo only the request's
/// header, not its body.
pub const NETLINK_CAP_ACK: i32 = 10;

// <linux/rtnetlink.h>: message types.

/// A link (`struct ifinfomsg`) was created or changed; a link dump's reply.
pub const RTM_NEWLINK: u16 = 16;
/// A link was removed.
pub const RTM_DELLINK: u16 = 17;
/// Get one link or dump them all.
pub const RTM_GETLINK: u16 = 18;
/// Change a link.
pub const RTM_SETLINK: u16 = 19;
/// An address (`struct ifaddrmsg`) was added; an address dump's reply.
pub const RTM_NEWADDR: u16 = 20;
/// An address was removed.
pub const RTM_DELADDR: u16 = 21;
/// Dump the addresses.
pub const RTM_GETADDR: u16 = 22;
/// Add or replace a route (`struct rtmsg`); a route dump's reply.
pub const RTM_NEWROUTE: u16 = 24;
/// Delete a route.
pub const RTM_DELROUTE: u16 = 25;
/// Get a route or dump the tables.
pub const RTM_GETROUTE: u16 = 26;
/// Add or replace a nexthop object (`struct nhmsg`, Linux ≥ 5.3); a nexthop
/// dump's reply.
pub const RTM_NEWNEXTHOP: u16 = 104;
/// Delete a nexthop object.
pub const RTM_DELNEXTHOP: u16 = 105;
/// Dump the nexthop objects.
pub const RTM_GETNEXTHOP: u16 = 106;

// <linux/rtnetlink.h>: route attributes (`enum rtattr_type_t`).

/// The destination address.
pub const RTA_DST: u16 = 1;
/// The output interface index.
pub const RTA_OIF: u16 = 4;
/// The gateway address.
pub const RTA_GATEWAY: u16 = 5;
/// The metric (`ip route … metric N`).
pub const RTA_PRIORITY: u16 = 6;
/// Nested `RTAX_*` metrics.
pub const RTA_METRICS: u16 = 8;
/// `struct rtnexthop` entries of a multipath route.
pub const RTA_MULTIPATH: u16 = 9;
/// The table, when it does not fit `rtm_table` (or always, in dumps).
pub const RTA_TABLE: u16 = 15;
/// The nexthop object a route goes through.
pub const RTA_NH_ID: u16 = 30;
/// The type bits of `rta_type`: the top two are `NLA_F_NESTED` and
/// `NLA_F_NET_BYTEORDER` (<linux/netlink.h>).
pub const NLA_TYPE_MASK: u16 = 0x3fff;

/// The path MTU metric inside `RTA_METRICS` (`enum` of `RTAX_*`).
pub const RTAX_MTU: u16 = 2;

// <linux/rtnetlink.h>: `rtm_type`.

/// Any type (a delete matching every type).
pub const RTN_UNSPEC: u8 = 0;
/// A gateway or direct route.
pub const RTN_UNICAST: u8 = 1;
/// Accepted locally.
pub const RTN_LOCAL: u8 = 2;
/// Dropped silently.
pub const RTN_BLACKHOLE: u8 = 6;
/// Dropped with ICMP unreachable.
pub const RTN_UNREACHABLE: u8 = 7;

// <linux/rtnetlink.h>: `rtm_scope`, `rtm_table`, `rtnh_flags`.

/// Anywhere: gateway routes and blackholes.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// Match any scope (what `ip route del` sends for IPv4).
pub const RT_SCOPE_NOWHERE: u8 = 255;
/// The main routing table.
pub const RT_TABLE_MAIN: u8 = 254;
/// The gateway is on the link whatever the interface's addresses say.
pub const RTNH_F_ONLINK: u32 = 4;

// <linux/nexthop.h>: nexthop object attributes.

/// The object's id.
pub const NHA_ID: u16 = 1;
/// The members of a group (`struct nexthop_grp` each).
pub const NHA_GROUP: u16 = 2;
/// A blackhole object (flag attribute, no value).
pub const NHA_BLACKHOLE: u16 = 4;
/// The output interface index.
pub const NHA_OIF: u16 = 5;
/// The gateway address.
pub const NHA_GATEWAY: u16 = 6;
/// `sizeof(struct nhmsg)`: family, scope, protocol, reserved, flags.
pub const NHMSG_LEN: usize = 8;
/// `sizeof(struct nexthop_grp)`: id, weight, weight_high, reserved.
pub const NEXTHOP_GRP_LEN: usize = 8;

// <linux/rtnetlink.h>: multicast groups (`enum rtnetlink_groups`).

/// Link changes.
pub const RTNLGRP_LINK: u32 = 1;
/// IPv4 address changes.
pub const RTNLGRP_IPV4_IFADDR: u32 = 5;
/// IPv4 route changes.
pub const RTNLGRP_IPV4_ROUTE: u32 = 7;
/// IPv6 route changes.
pub const RTNLGRP_IPV6_ROUTE: u32 = 11;
/// Nexthop object changes (Linux ≥ 5.3).
pub const RTNLGRP_NEXTHOP: u32 = 32;

/// `sizeof(struct rtmsg)`.
pub const RTMSG_LEN: usize = 12;
/// `sizeof(struct rtnexthop)`: length, flags, hops, ifindex.
pub const RTNEXTHOP_LEN: usize = 8;
/// `sizeof(struct rtattr)`.
pub const RTA_HDRLEN: usize = 4;
