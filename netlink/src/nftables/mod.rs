//! nftables over netlink (`NETLINK_NETFILTER`, subsystem
//! `NFNL_SUBSYS_NFTABLES`), written by us rather than by a crate: the few
//! objects a filter of our own needs (a table, a named set, a named
//! counter, a base chain, one rule) and element changes to the set.
//!
//! Why not a crate: `rustables` is GPL-3.0 (these crates are Apache-2.0);
//! `nftnl` binds libnftnl and libmnl (C libraries the image would carry,
//! and `unsafe` FFI); the `nftables` crate runs the `nft` binary per
//! change. The messages are plain netlink with this crate's attribute
//! writer and reader, as `nft` sends them (checked against `nft list`).
//!
//! - [`Request`]: one message of a transaction, built by its constructors
//!   (`nft add table`, `add set`, `add counter`, `add chain`, `add rule`,
//!   `add element`, `delete element`, `delete table`); a rule's body is a
//!   list of [`Expr`].
//! - [`Nftables`]: the socket. [`Nftables::transaction`] sends requests
//!   between `NFNL_MSG_BATCH_BEGIN` and `_END`: the kernel applies all of
//!   them or none. Dumps read what is there: [`Nftables::tables`],
//!   [`Nftables::chains`], [`Nftables::sets`], [`Nftables::rules`],
//!   [`Nftables::counters`], [`Nftables::set_elements`].
//! - [`parse`]: the dump replies as values.
//!
//! Every message body starts with `struct nfgenmsg` (family, version,
//! resource id); the message type is `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`.
//! Integers in nftables attributes are big-endian.
//!
//! ```
//! use netlink::nftables::{Expr, Family, Request};
//!
//! // nft add rule ip t c ip protocol 4 drop
//! let rule = Request::new_rule(Family::IPV4, "t", "c", &[
//!     Expr::NetworkPayload { offset: 9, len: 1, dreg: 1 },
//!     Expr::Equal { sreg: 1, value: &[4] },
//!     Expr::Verdict(netlink::consts::NF_DROP),
//! ], "drop IPIP");
//! assert_eq!(rule.kind, netlink::consts::NFT_MSG_NEWRULE);
//! ```

pub mod parse;
mod socket;

use std::fmt;

use crate::attr;
use crate::consts::{
    NF_INET_LOCAL_IN, NFPROTO_IPV4, NFT_CMP_EQ, NFT_LOOKUP_F_INV, NFT_MSG_DELSETELEM,
    NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWOBJ, NFT_MSG_NEWRULE, NFT_MSG_NEWSET,
    NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE, NFT_OBJECT_COUNTER, NFT_PAYLOAD_NETWORK_HEADER,
    NFT_REG_VERDICT, NFTA_CHAIN_HOOK, NFTA_CHAIN_NAME, NFTA_CHAIN_POLICY, NFTA_CHAIN_TABLE,
    NFTA_CHAIN_TYPE, NFTA_CMP_DATA, NFTA_CMP_OP, NFTA_CMP_SREG, NFTA_COUNTER_BYTES,
    NFTA_COUNTER_PACKETS, NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_EXPR_DATA, NFTA_EXPR_NAME,
    NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY, NFTA_IMMEDIATE_DATA, NFTA_IMMEDIATE_DREG,
    NFTA_LIST_ELEM, NFTA_LOOKUP_FLAGS, NFTA_LOOKUP_SET, NFTA_LOOKUP_SET_ID, NFTA_LOOKUP_SREG,
    NFTA_OBJ_DATA, NFTA_OBJ_NAME, NFTA_OBJ_TABLE, NFTA_OBJ_TYPE, NFTA_OBJREF_IMM_NAME,
    NFTA_OBJREF_IMM_TYPE, NFTA_PAYLOAD_BASE, NFTA_PAYLOAD_DREG, NFTA_PAYLOAD_LEN,
    NFTA_PAYLOAD_OFFSET, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_TABLE,
    NFTA_RULE_USERDATA, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_FLAGS, NFTA_SET_ID, NFTA_SET_KEY_LEN, NFTA_SET_KEY_TYPE,
    NFTA_SET_NAME, NFTA_SET_TABLE, NFTA_TABLE_NAME, NFTA_VERDICT_CODE, NFTNL_UDATA_RULE_COMMENT,
    NLA_F_NESTED, NLM_F_APPEND, NLM_F_CREATE,
};

pub use socket::Nftables;

/// A table's family: the `ip` in `nft list table ip NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Family(pub u8);

impl Family {
    /// `ip`: IPv4 packets only.
    pub const IPV4: Family = Family(NFPROTO_IPV4);
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Family::IPV4 => f.write_str("ip"),
            Family(other) => write!(f, "family {other}"),
        }
    }
}

/// A base chain's hook: where in the stack it sees packets, and its order
/// among the chains of that hook (lower first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hook {
    /// `NF_INET_*` ([`Hook::INPUT`]).
    pub number: u32,
    /// The priority (`filter` is 0).
    pub priority: i32,
}

impl Hook {
    /// `hook input priority filter`: packets addressed to this host.
    pub const INPUT: Hook = Hook {
        number: NF_INET_LOCAL_IN,
        priority: 0,
    };
}

/// One expression of a rule, as the kernel runs them: each reads or
/// writes registers; a comparison that fails ends the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expr<'a> {
    /// `payload load LEN b @ network header + OFFSET => reg DREG`.
    NetworkPayload {
        /// Bytes from the start of the IP header.
        offset: u32,
        /// How many bytes.
        len: u32,
        /// The register written.
        dreg: u32,
    },
    /// `cmp eq reg SREG VALUE`: go on only when equal.
    Equal {
        /// The register compared.
        sreg: u32,
        /// The bytes it must hold.
        value: &'a [u8],
    },
    /// `lookup reg SREG set SET` (inverted: go on only when *absent*).
    Lookup {
        /// The set's name.
        set: &'a str,
        /// The set's id when it is created in the same transaction.
        set_id: Option<u32>,
        /// The register holding the key.
        sreg: u32,
        /// Match when the key is not in the set (`!= @SET`).
        invert: bool,
    },
    /// `counter name NAME`: count the packet on a named counter.
    CounterRef {
        /// The counter's name.
        name: &'a str,
    },
    /// `immediate reg 0 VERDICT`: `accept` or `drop`.
    Verdict(u32),
}

impl Expr<'_> {
    /// The expression's kernel name (`NFTA_EXPR_NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            Expr::NetworkPayload { .. } => "payload",
            Expr::Equal { .. } => "cmp",
            Expr::Lookup { .. } => "lookup",
            Expr::CounterRef { .. } => "objref",
            Expr::Verdict(_) => "immediate",
        }
    }

    /// Appends this expression as one `NFTA_LIST_ELEM`.
    fn emit(&self, buf: &mut Vec<u8>) {
        nested(buf, NFTA_LIST_ELEM, |e| {
            emit_str(e, NFTA_EXPR_NAME, self.name());
            nested(e, NFTA_EXPR_DATA, |d| match *self {
                Expr::NetworkPayload { offset, len, dreg } => {
                    emit_be32(d, NFTA_PAYLOAD_DREG, dreg);
                    emit_be32(d, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
                    emit_be32(d, NFTA_PAYLOAD_OFFSET, offset);
                    emit_be32(d, NFTA_PAYLOAD_LEN, len);
                }
                Expr::Equal { sreg, value } => {
                    emit_be32(d, NFTA_CMP_SREG, sreg);
                    emit_be32(d, NFTA_CMP_OP, NFT_CMP_EQ);
                    nested(d, NFTA_CMP_DATA, |v| attr::emit(v, NFTA_DATA_VALUE, value));
                }
                Expr::Lookup {
                    set,
                    set_id,
                    sreg,
                    invert,
                } => {
                    emit_str(d, NFTA_LOOKUP_SET, set);
                    emit_be32(d, NFTA_LOOKUP_SREG, sreg);
                    if let Some(id) = set_id {
                        emit_be32(d, NFTA_LOOKUP_SET_ID, id);
                    }
                    if invert {
                        emit_be32(d, NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
                    }
                }
                Expr::CounterRef { name } => {
                    emit_be32(d, NFTA_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
                    emit_str(d, NFTA_OBJREF_IMM_NAME, name);
                }
                Expr::Verdict(code) => {
                    emit_be32(d, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                    nested(d, NFTA_IMMEDIATE_DATA, |v| {
                        nested(v, NFTA_DATA_VERDICT, |c| {
                            emit_be32(c, NFTA_VERDICT_CODE, code);
                        });
                    });
                }
            });
        });
    }
}

/// One message of a transaction ([`Nftables::transaction`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `NFT_MSG_*` (the low byte of the message type).
    pub kind: u8,
    /// `NLM_F_*` besides `NLM_F_REQUEST` and `NLM_F_ACK`.
    pub flags: u16,
    /// The table's family.
    pub family: Family,
    /// The attributes after `struct nfgenmsg`.
    pub attributes: Vec<u8>,
}

impl Request {
    fn new(kind: u8, flags: u16, family: Family) -> Request {
        Request {
            kind,
            flags,
            family,
            attributes: Vec::with_capacity(64),
        }
    }

    /// `nft add table FAMILY NAME` (no error when it exists).
    pub fn new_table(family: Family, name: &str) -> Request {
        let mut r = Request::new(NFT_MSG_NEWTABLE, NLM_F_CREATE, family);
        emit_str(&mut r.attributes, NFTA_TABLE_NAME, name);
        r
    }

    /// `nft delete table FAMILY NAME`: the table and everything in it.
    pub fn del_table(family: Family, name: &str) -> Request {
        let mut r = Request::new(NFT_MSG_DELTABLE, 0, family);
        emit_str(&mut r.attributes, NFTA_TABLE_NAME, name);
        r
    }

    /// `nft add counter FAMILY TABLE NAME`: a named counter, starting at 0.
    pub fn new_counter(family: Family, table: &str, name: &str) -> Request {
        let mut r = Request::new(NFT_MSG_NEWOBJ, NLM_F_CREATE, family);
        emit_str(&mut r.attributes, NFTA_OBJ_TABLE, table);
        emit_str(&mut r.attributes, NFTA_OBJ_NAME, name);
        emit_be32(&mut r.attributes, NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
        // The kernel refuses an object without data (EINVAL), even a
        // counter starting at zero; nft sends both values.
        nested(&mut r.attributes, NFTA_OBJ_DATA, |d| {
            attr::emit(d, NFTA_COUNTER_BYTES, &0u64.to_be_bytes());
            attr::emit(d, NFTA_COUNTER_PACKETS, &0u64.to_be_bytes());
        });
        r
    }

    /// `nft add set FAMILY TABLE NAME { type ipv4_addr; }`, with `id`
    /// naming it for rules of the same transaction.
    pub fn new_ipv4_set(family: Family, table: &str, name: &str, id: u32) -> Request {
        let mut r = Request::new(NFT_MSG_NEWSET, NLM_F_CREATE, family);
        let a = &mut r.attributes;
        emit_str(a, NFTA_SET_TABLE, table);
        emit_str(a, NFTA_SET_NAME, name);
        emit_be32(a, NFTA_SET_FLAGS, 0);
        emit_be32(a, NFTA_SET_KEY_TYPE, crate::consts::NFT_TYPE_IPV4_ADDR);
        emit_be32(a, NFTA_SET_KEY_LEN, 4);
        emit_be32(a, NFTA_SET_ID, id);
        r
    }

    /// `nft add chain FAMILY TABLE NAME { type filter hook … priority …;
    /// policy …; }`.
    pub fn new_filter_chain(
        family: Family,
        table: &str,
        name: &str,
        hook: Hook,
        policy: u32,
    ) -> Request {
        let mut r = Request::new(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family);
        let a = &mut r.attributes;
        emit_str(a, NFTA_CHAIN_TABLE, table);
        emit_str(a, NFTA_CHAIN_NAME, name);
        nested(a, NFTA_CHAIN_HOOK, |h| {
            emit_be32(h, NFTA_HOOK_HOOKNUM, hook.number);
            attr::emit(h, NFTA_HOOK_PRIORITY, &hook.priority.to_be_bytes());
        });
        emit_be32(a, NFTA_CHAIN_POLICY, policy);
        emit_str(a, NFTA_CHAIN_TYPE, "filter");
        r
    }

    /// `nft add rule FAMILY TABLE CHAIN EXPRS… comment "COMMENT"`
    /// (appended at the end of the chain).
    pub fn new_rule(
        family: Family,
        table: &str,
        chain: &str,
        exprs: &[Expr<'_>],
        comment: &str,
    ) -> Request {
        let mut r = Request::new(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family);
        let a = &mut r.attributes;
        emit_str(a, NFTA_RULE_TABLE, table);
        emit_str(a, NFTA_RULE_CHAIN, chain);
        nested(a, NFTA_RULE_EXPRESSIONS, |list| {
            for e in exprs {
                e.emit(list);
            }
        });
        attr::emit(a, NFTA_RULE_USERDATA, &comment_userdata(comment));
        r
    }

    /// `nft add element FAMILY TABLE SET { KEY, … }` (keys already there
    /// are no error): one request per [`KEYS_PER_REQUEST`] keys.
    pub fn new_elements(family: Family, table: &str, set: &str, keys: &[&[u8]]) -> Vec<Request> {
        elements(NFT_MSG_NEWSETELEM, NLM_F_CREATE, family, table, set, keys)
    }

    /// `nft delete element FAMILY TABLE SET { KEY, … }` (a key that is not
    /// there fails the transaction with `ENOENT`): one request per
    /// [`KEYS_PER_REQUEST`] keys.
    pub fn del_elements(family: Family, table: &str, set: &str, keys: &[&[u8]]) -> Vec<Request> {
        elements(NFT_MSG_DELSETELEM, 0, family, table, set, keys)
    }
}

/// Most keys in one element request: the element list is one attribute,
/// whose length field has 16 bits (an IPv4 key takes 20 bytes of it).
pub const KEYS_PER_REQUEST: usize = 1024;

fn elements(
    kind: u8,
    flags: u16,
    family: Family,
    table: &str,
    set: &str,
    keys: &[&[u8]],
) -> Vec<Request> {
    keys.chunks(KEYS_PER_REQUEST)
        .map(|chunk| {
            let mut r = Request::new(kind, flags, family);
            let a = &mut r.attributes;
            emit_str(a, NFTA_SET_ELEM_LIST_TABLE, table);
            emit_str(a, NFTA_SET_ELEM_LIST_SET, set);
            nested(a, NFTA_SET_ELEM_LIST_ELEMENTS, |list| {
                for key in chunk {
                    nested(list, NFTA_LIST_ELEM, |e| {
                        nested(e, NFTA_SET_ELEM_KEY, |k| {
                            attr::emit(k, NFTA_DATA_VALUE, key)
                        });
                    });
                }
            });
            r
        })
        .collect()
}

/// nft's rule comment as user data: type, length (with the NUL), text,
/// NUL. A comment longer than 254 bytes is cut.
fn comment_userdata(comment: &str) -> Vec<u8> {
    let text = comment.as_bytes();
    let text = text.get(..254).unwrap_or(text);
    let len = u8::try_from(text.len().saturating_add(1)).unwrap_or(u8::MAX);
    let mut out = Vec::with_capacity(text.len().saturating_add(3));
    out.push(NFTNL_UDATA_RULE_COMMENT);
    out.push(len);
    out.extend_from_slice(text);
    out.push(0);
    out
}

/// Appends a NUL-terminated string attribute (`NLA_STRING`, as nft sends).
fn emit_str(buf: &mut Vec<u8>, kind: u16, value: &str) {
    let mut v = Vec::with_capacity(value.len().saturating_add(1));
    v.extend_from_slice(value.as_bytes());
    v.push(0);
    attr::emit(buf, kind, &v);
}

/// Appends a big-endian `u32` attribute.
fn emit_be32(buf: &mut Vec<u8>, kind: u16, value: u32) {
    attr::emit(buf, kind, &value.to_be_bytes());
}

/// Appends a nested attribute whose value `write` appends.
fn nested(buf: &mut Vec<u8>, kind: u16, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::with_capacity(64);
    write(&mut inner);
    attr::emit(buf, NLA_F_NESTED | kind, &inner);
}

#[cfg(test)]
mod tests;
