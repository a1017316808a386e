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
/// The lightweight-tunnel state of a route (nested, by encap type).
pub const RTA_ENCAP: u16 = 22;
/// The type of `RTA_ENCAP` (`u16`, `enum lwtunnel_encap_types`).
pub const RTA_ENCAP_TYPE: u16 = 21;
/// The nexthop object a route goes through.
pub const RTA_NH_ID: u16 = 30;

// <linux/lwtunnel.h>.

/// `LWTUNNEL_ENCAP_BPF`: BPF programs run on the route's packets.
pub const LWTUNNEL_ENCAP_BPF: u16 = 6;
/// `LWT_BPF_XMIT`: the program run before the packet leaves (nested).
pub const LWT_BPF_XMIT: u16 = 3;
/// `LWT_BPF_XMIT_HEADROOM`: the room the xmit program may push (`u32`).
pub const LWT_BPF_XMIT_HEADROOM: u16 = 4;
/// `LWT_BPF_PROG_FD`: the program, by file descriptor (written only).
pub const LWT_BPF_PROG_FD: u16 = 1;
/// `LWT_BPF_PROG_NAME`: the name the route gives its program (a string).
pub const LWT_BPF_PROG_NAME: u16 = 2;
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

// <linux/netlink.h>: attribute flags.

/// The attribute holds attributes (`NLA_F_NESTED`).
pub const NLA_F_NESTED: u16 = 0x8000;

// <linux/netfilter/nfnetlink.h>

/// The nftables subsystem: the high byte of every nftables message type.
pub const NFNL_SUBSYS_NFTABLES: u8 = 10;
/// Opens a transaction (its `res_id` names the subsystem).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
/// Commits the transaction.
pub const NFNL_MSG_BATCH_END: u16 = 17;
/// `nfgen_version`.
pub const NFNETLINK_V0: u8 = 0;
/// `sizeof(struct nfgenmsg)`: family, version, resource id (big-endian).
pub const NFGENMSG_LEN: usize = 4;

// <linux/netfilter.h>

/// Any family (the batch messages).
pub const NFPROTO_UNSPEC: u8 = 0;
/// IPv4 tables (`nft … table ip NAME`).
pub const NFPROTO_IPV4: u8 = 2;
/// The verdict that drops a packet.
pub const NF_DROP: u32 = 0;
/// The verdict that lets a packet go on.
pub const NF_ACCEPT: u32 = 1;
/// The hook for packets addressed to this host (`hook input`).
pub const NF_INET_LOCAL_IN: u32 = 1;

// <linux/netfilter/nf_tables.h>: message types (low byte).

/// Create a table; a table dump's reply.
pub const NFT_MSG_NEWTABLE: u8 = 0;
/// Dump the tables.
pub const NFT_MSG_GETTABLE: u8 = 1;
/// Delete a table and everything in it.
pub const NFT_MSG_DELTABLE: u8 = 2;
/// Create a chain; a chain dump's reply.
pub const NFT_MSG_NEWCHAIN: u8 = 3;
/// Dump the chains.
pub const NFT_MSG_GETCHAIN: u8 = 4;
/// Append a rule; a rule dump's reply.
pub const NFT_MSG_NEWRULE: u8 = 6;
/// Dump the rules (of one table and chain).
pub const NFT_MSG_GETRULE: u8 = 7;
/// Create a set; a set dump's reply.
pub const NFT_MSG_NEWSET: u8 = 9;
/// Dump the sets (of one table).
pub const NFT_MSG_GETSET: u8 = 10;
/// Add elements to a set; an element dump's reply.
pub const NFT_MSG_NEWSETELEM: u8 = 12;
/// Dump a set's elements.
pub const NFT_MSG_GETSETELEM: u8 = 13;
/// Remove elements from a set.
pub const NFT_MSG_DELSETELEM: u8 = 14;
/// Create a stateful object (a named counter); an object dump's reply.
pub const NFT_MSG_NEWOBJ: u8 = 18;
/// Dump the stateful objects (of one table and type).
pub const NFT_MSG_GETOBJ: u8 = 19;

// <linux/netfilter/nf_tables.h>: attributes.

/// `NFTA_TABLE_NAME`.
pub const NFTA_TABLE_NAME: u16 = 1;
/// `NFTA_CHAIN_TABLE`.
pub const NFTA_CHAIN_TABLE: u16 = 1;
/// `NFTA_CHAIN_NAME`.
pub const NFTA_CHAIN_NAME: u16 = 3;
/// `NFTA_CHAIN_HOOK`: nested `NFTA_HOOK_*`.
pub const NFTA_CHAIN_HOOK: u16 = 4;
/// `NFTA_CHAIN_POLICY`: a verdict (big-endian).
pub const NFTA_CHAIN_POLICY: u16 = 5;
/// `NFTA_CHAIN_TYPE`: `filter`, `nat` or `route`.
pub const NFTA_CHAIN_TYPE: u16 = 7;
/// `NFTA_HOOK_HOOKNUM` (big-endian).
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
/// `NFTA_HOOK_PRIORITY` (big-endian, signed).
pub const NFTA_HOOK_PRIORITY: u16 = 2;
/// `NFTA_RULE_TABLE`.
pub const NFTA_RULE_TABLE: u16 = 1;
/// `NFTA_RULE_CHAIN`.
pub const NFTA_RULE_CHAIN: u16 = 2;
/// `NFTA_RULE_HANDLE` (big-endian u64).
pub const NFTA_RULE_HANDLE: u16 = 3;
/// `NFTA_RULE_EXPRESSIONS`: a list of `NFTA_LIST_ELEM`, one per expression.
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// `NFTA_RULE_USERDATA`: opaque to the kernel; nft keeps comments there.
pub const NFTA_RULE_USERDATA: u16 = 7;
/// `NFTA_LIST_ELEM`.
pub const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_EXPR_NAME`.
pub const NFTA_EXPR_NAME: u16 = 1;
/// `NFTA_EXPR_DATA`: the expression's own attributes, nested.
pub const NFTA_EXPR_DATA: u16 = 2;
/// `NFTA_PAYLOAD_DREG`.
pub const NFTA_PAYLOAD_DREG: u16 = 1;
/// `NFTA_PAYLOAD_BASE`.
pub const NFTA_PAYLOAD_BASE: u16 = 2;
/// `NFTA_PAYLOAD_OFFSET`.
pub const NFTA_PAYLOAD_OFFSET: u16 = 3;
/// `NFTA_PAYLOAD_LEN`.
pub const NFTA_PAYLOAD_LEN: u16 = 4;
/// `NFT_PAYLOAD_NETWORK_HEADER`: offsets count from the IP header.
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
/// `NFTA_CMP_SREG`.
pub const NFTA_CMP_SREG: u16 = 1;
/// `NFTA_CMP_OP`.
pub const NFTA_CMP_OP: u16 = 2;
/// `NFTA_CMP_DATA`: nested `NFTA_DATA_VALUE`.
pub const NFTA_CMP_DATA: u16 = 3;
/// `NFT_CMP_EQ`.
pub const NFT_CMP_EQ: u32 = 0;
/// `NFT_CMP_NEQ`.
pub const NFT_CMP_NEQ: u32 = 1;
/// `NFTA_LOOKUP_SET`: the set's name.
pub const NFTA_LOOKUP_SET: u16 = 1;
/// `NFTA_LOOKUP_SREG`.
pub const NFTA_LOOKUP_SREG: u16 = 2;
/// `NFTA_LOOKUP_SET_ID`: a set created in the same transaction.
pub const NFTA_LOOKUP_SET_ID: u16 = 4;
/// `NFTA_LOOKUP_FLAGS`.
pub const NFTA_LOOKUP_FLAGS: u16 = 5;
/// `NFT_LOOKUP_F_INV`: match when the key is *not* in the set.
pub const NFT_LOOKUP_F_INV: u32 = 1;
/// `NFTA_OBJREF_IMM_TYPE`.
pub const NFTA_OBJREF_IMM_TYPE: u16 = 1;
/// `NFTA_OBJREF_IMM_NAME`.
pub const NFTA_OBJREF_IMM_NAME: u16 = 2;
/// `NFTA_IMMEDIATE_DREG`.
pub const NFTA_IMMEDIATE_DREG: u16 = 1;
/// `NFTA_IMMEDIATE_DATA`: nested `NFTA_DATA_*`.
pub const NFTA_IMMEDIATE_DATA: u16 = 2;
/// `NFTA_DATA_VALUE`.
pub const NFTA_DATA_VALUE: u16 = 1;
/// `NFTA_DATA_VERDICT`: nested `NFTA_VERDICT_*`.
pub const NFTA_DATA_VERDICT: u16 = 2;
/// `NFTA_VERDICT_CODE` (big-endian).
pub const NFTA_VERDICT_CODE: u16 = 1;
/// `NFT_REG_VERDICT`: the register a verdict is written to.
pub const NFT_REG_VERDICT: u32 = 0;
/// `NFT_REG_1`: the first 16-byte data register.
pub const NFT_REG_1: u32 = 1;
/// `NFTA_SET_TABLE`.
pub const NFTA_SET_TABLE: u16 = 1;
/// `NFTA_SET_NAME`.
pub const NFTA_SET_NAME: u16 = 2;
/// `NFTA_SET_FLAGS` (big-endian).
pub const NFTA_SET_FLAGS: u16 = 3;
/// `NFTA_SET_KEY_TYPE`: nft's data type, for display (big-endian).
pub const NFTA_SET_KEY_TYPE: u16 = 4;
/// `NFTA_SET_KEY_LEN` (big-endian).
pub const NFTA_SET_KEY_LEN: u16 = 5;
/// `NFTA_SET_ID`: names the set within its transaction.
pub const NFTA_SET_ID: u16 = 10;
/// `NFTA_SET_ELEM_LIST_TABLE`.
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_SET`.
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`: a list of `NFTA_LIST_ELEM`.
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `NFTA_SET_ELEM_KEY`: nested `NFTA_DATA_VALUE`.
pub const NFTA_SET_ELEM_KEY: u16 = 1;
/// `NFTA_OBJ_TABLE`.
pub const NFTA_OBJ_TABLE: u16 = 1;
/// `NFTA_OBJ_NAME`.
pub const NFTA_OBJ_NAME: u16 = 2;
/// `NFTA_OBJ_TYPE` (big-endian).
pub const NFTA_OBJ_TYPE: u16 = 3;
/// `NFTA_OBJ_DATA`: the object's own attributes, nested.
pub const NFTA_OBJ_DATA: u16 = 4;
/// `NFT_OBJECT_COUNTER`.
pub const NFT_OBJECT_COUNTER: u32 = 1;
/// `NFTA_COUNTER_BYTES` (big-endian u64).
pub const NFTA_COUNTER_BYTES: u16 = 1;
/// `NFTA_COUNTER_PACKETS` (big-endian u64).
pub const NFTA_COUNTER_PACKETS: u16 = 2;
/// nft's data type `ipv4_addr` (`TYPE_IPADDR` in nftables' `datatype.h`):
/// how `nft list` shows a set's keys.
pub const NFT_TYPE_IPV4_ADDR: u32 = 7;
/// nft's comment in rule user data (`NFTNL_UDATA_RULE_COMMENT`, libnftnl
/// `udata.h`): a type byte, a length byte, the text with its NUL.
pub const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
