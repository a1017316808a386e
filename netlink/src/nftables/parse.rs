//! nftables dump replies as values: each body is `struct nfgenmsg` and
//! the object's attributes. A body too short for the header, or without a
//! name, is `None`; unknown attributes are skipped.

use crate::attr::attributes;
use crate::consts::{
    NFGENMSG_LEN, NFTA_CHAIN_HOOK, NFTA_CHAIN_NAME, NFTA_CHAIN_POLICY, NFTA_CHAIN_TABLE,
    NFTA_CHAIN_TYPE, NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS, NFTA_DATA_VALUE, NFTA_EXPR_NAME,
    NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY, NFTA_LIST_ELEM, NFTA_OBJ_DATA, NFTA_OBJ_NAME,
    NFTA_OBJ_TABLE, NFTA_OBJ_TYPE, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_HANDLE,
    NFTA_RULE_TABLE, NFTA_RULE_USERDATA, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS,
    NFTA_SET_FLAGS, NFTA_SET_KEY_LEN, NFTA_SET_NAME, NFTA_SET_TABLE, NFTA_TABLE_NAME,
    NFTNL_UDATA_RULE_COMMENT,
};

use super::{Family, Hook};

/// A table (`nft list tables`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Its family.
    pub family: Family,
    /// Its name.
    pub name: String,
}

/// A chain (`nft list chains`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The table it is in.
    pub table: String,
    /// Its name.
    pub name: String,
    /// Its hook, for a base chain.
    pub hook: Option<Hook>,
    /// Its policy (`NF_ACCEPT`, `NF_DROP`), for a base chain.
    pub policy: Option<u32>,
    /// Its type (`filter`, `nat`, `route`), for a base chain.
    pub kind: Option<String>,
}

/// A set (`nft list sets`), without its elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// The table it is in.
    pub table: String,
    /// Its name.
    pub name: String,
    /// `NFT_SET_*` flags.
    pub flags: u32,
    /// The length of its keys in bytes.
    pub key_len: u32,
}

/// A rule (`nft -a list chain`), as far as telling ours apart needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// Its handle.
    pub handle: u64,
    /// The names of its expressions, in order.
    pub expressions: Vec<String>,
    /// nft's comment in its user data.
    pub comment: Option<String>,
}

/// A named counter (`nft list counters`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// The table it is in.
    pub table: String,
    /// Its name.
    pub name: String,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

/// The family and attributes of a reply body.
fn split(body: &[u8]) -> Option<(Family, &[u8])> {
    let family = *body.first()?;
    Some((Family(family), body.get(NFGENMSG_LEN..)?))
}

/// A string attribute without its NUL.
fn string(value: &[u8]) -> String {
    let text = value.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

/// A big-endian `u32` attribute.
fn be32(value: &[u8]) -> Option<u32> {
    value.first_chunk::<4>().map(|b| u32::from_be_bytes(*b))
}

/// A big-endian `u64` attribute.
fn be64(value: &[u8]) -> Option<u64> {
    value.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
}

impl Table {
    /// From an `NFT_MSG_NEWTABLE` body.
    pub fn parse(body: &[u8]) -> Option<Table> {
        let (family, attrs) = split(body)?;
        let name = attributes(attrs).find(|(k, _)| *k == NFTA_TABLE_NAME)?.1;
        Some(Table {
            family,
            name: string(name),
        })
    }
}

impl Chain {
    /// From an `NFT_MSG_NEWCHAIN` body.
    pub fn parse(body: &[u8]) -> Option<Chain> {
        let (_, attrs) = split(body)?;
        let mut chain = Chain {
            table: String::new(),
            name: String::new(),
            hook: None,
            policy: None,
            kind: None,
        };
        for (kind, value) in attributes(attrs) {
            match kind {
                NFTA_CHAIN_TABLE => chain.table = string(value),
                NFTA_CHAIN_NAME => chain.name = string(value),
                NFTA_CHAIN_POLICY => chain.policy = be32(value),
                NFTA_CHAIN_TYPE => chain.kind = Some(string(value)),
                NFTA_CHAIN_HOOK => {
                    let mut number = None;
                    let mut priority = None;
                    for (k, v) in attributes(value) {
                        match k {
                            NFTA_HOOK_HOOKNUM => number = be32(v),
                            NFTA_HOOK_PRIORITY => {
                                priority = v.first_chunk::<4>().map(|b| i32::from_be_bytes(*b));
                            }
                            _ => {}
                        }
                    }
                    if let (Some(number), Some(priority)) = (number, priority) {
                        chain.hook = Some(Hook { number, priority });
                    }
                }
                _ => {}
            }
        }
        (!chain.name.is_empty()).then_some(chain)
    }
}

impl Set {
    /// From an `NFT_MSG_NEWSET` body.
    pub fn parse(body: &[u8]) -> Option<Set> {
        let (_, attrs) = split(body)?;
        let mut set = Set {
            table: String::new(),
            name: String::new(),
            flags: 0,
            key_len: 0,
        };
        for (kind, value) in attributes(attrs) {
            match kind {
                NFTA_SET_TABLE => set.table = string(value),
                NFTA_SET_NAME => set.name = string(value),
                NFTA_SET_FLAGS => set.flags = be32(value).unwrap_or(0),
                NFTA_SET_KEY_LEN => set.key_len = be32(value).unwrap_or(0),
                _ => {}
            }
        }
        (!set.name.is_empty()).then_some(set)
    }
}

impl Rule {
    /// From an `NFT_MSG_NEWRULE` body.
    pub fn parse(body: &[u8]) -> Option<Rule> {
        let (_, attrs) = split(body)?;
        let mut rule = Rule {
            table: String::new(),
            chain: String::new(),
            handle: 0,
            expressions: Vec::new(),
            comment: None,
        };
        for (kind, value) in attributes(attrs) {
            match kind {
                NFTA_RULE_TABLE => rule.table = string(value),
                NFTA_RULE_CHAIN => rule.chain = string(value),
                NFTA_RULE_HANDLE => rule.handle = be64(value).unwrap_or(0),
                NFTA_RULE_EXPRESSIONS => {
                    rule.expressions = attributes(value)
                        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
                        .filter_map(|(_, e)| attributes(e).find(|(k, _)| *k == NFTA_EXPR_NAME))
                        .map(|(_, name)| string(name))
                        .collect();
                }
                NFTA_RULE_USERDATA => rule.comment = comment(value),
                _ => {}
            }
        }
        Some(rule)
    }
}

/// nft's comment in rule user data: TLVs of a type byte and a length
/// byte; the comment's text ends in a NUL.
fn comment(userdata: &[u8]) -> Option<String> {
    let mut rest = userdata;
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let value = tail.get(..len)?;
        if *kind == NFTNL_UDATA_RULE_COMMENT {
            return Some(string(value));
        }
        rest = tail.get(len..)?;
    }
    None
}

impl Counter {
    /// From an `NFT_MSG_NEWOBJ` body; `None` for an object that is not a
    /// counter.
    pub fn parse(body: &[u8]) -> Option<Counter> {
        let (_, attrs) = split(body)?;
        let mut counter = Counter {
            table: String::new(),
            name: String::new(),
            packets: 0,
            bytes: 0,
        };
        let mut is_counter = false;
        for (kind, value) in attributes(attrs) {
            match kind {
                NFTA_OBJ_TABLE => counter.table = string(value),
                NFTA_OBJ_NAME => counter.name = string(value),
                NFTA_OBJ_TYPE => {
                    is_counter = be32(value) == Some(crate::consts::NFT_OBJECT_COUNTER);
                }
                NFTA_OBJ_DATA => {
                    for (k, v) in attributes(value) {
                        match k {
                            NFTA_COUNTER_PACKETS => counter.packets = be64(v).unwrap_or(0),
                            NFTA_COUNTER_BYTES => counter.bytes = be64(v).unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        is_counter.then_some(counter)
    }
}

/// The keys of an `NFT_MSG_NEWSETELEM` body (one dump reply holds many).
pub fn set_element_keys(body: &[u8]) -> Vec<Vec<u8>> {
    let Some((_, attrs)) = split(body) else {
        return Vec::new();
    };
    attributes(attrs)
        .filter(|(k, _)| *k == NFTA_SET_ELEM_LIST_ELEMENTS)
        .flat_map(|(_, list)| attributes(list))
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .filter_map(|(_, element)| attributes(element).find(|(k, _)| *k == NFTA_SET_ELEM_KEY))
        .filter_map(|(_, key)| attributes(key).find(|(k, _)| *k == NFTA_DATA_VALUE))
        .map(|(_, value)| value.to_vec())
        .collect()
}
