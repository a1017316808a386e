//! The kernel tunnel's IPIP filter: IP protocol 4 is accepted only from
//! the cluster's nodes, and what is dropped is counted.
//!
//! The kernel's ipip module takes every protocol-4 packet addressed to a
//! local address, from anyone; without a filter any host that can reach a
//! node can put packets into the pod network. Calico's Felix drops IPIP
//! from outside its set of node addresses in the INPUT chain ("Drop IPIP
//! packets from non-Calico hosts"); this is the same rule in a table of
//! our own, over nftables' netlink interface ([`netlink::nftables`]):
//!
//! ```text
//! table ip podroute {
//!     counter ipip-dropped { }
//!     set ipip-nodes { type ipv4_addr; elements = { NODE, … } }
//!     chain ipip-input {
//!         type filter hook input priority filter; policy accept;
//!         ip protocol 4 ip saddr != @ipip-nodes counter name "ipip-dropped" drop
//!     }
//! }
//! ```
//!
//! [`IpipFilter::apply`] creates the table in one transaction when it is
//! missing, and otherwise adopts it: the node set is brought up to date by
//! adding and removing elements (no rule is rewritten, the counter keeps
//! counting across restarts). A table of that name that is not exactly
//! ours is replaced in one transaction, so no packet passes unfiltered
//! meanwhile. [`IpipFilter::remove`] deletes the table.
//!
//! The userspace data plane needs none of this: its raw socket sees every
//! protocol-4 packet, and it drops those from addresses that are neither
//! tunnel-route gateways nor allowed peers itself (counted as
//! `drop_unknown_peer`).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use netlink::consts::{NF_ACCEPT, NF_DROP};
use netlink::nftables::parse::Counter;
use netlink::nftables::{Expr, Family, Hook, Nftables, Request};

/// The table's family: IPIP's outer header is IPv4.
pub const FAMILY: Family = Family::IPV4;
/// The table, ours alone.
pub const TABLE: &str = "podroute";
/// The set of node addresses IPIP is accepted from.
pub const SET: &str = "ipip-nodes";
/// The input-hook chain.
pub const CHAIN: &str = "ipip-input";
/// The named counter of dropped packets.
pub const COUNTER: &str = "ipip-dropped";
/// The rule's comment; it also tells our rule (this version of it) apart.
pub const COMMENT: &str = "podroute v1: drop IPIP from non-nodes";

/// The set's id within the creating transaction.
const SET_ID: u32 = 1;
/// The kernel's expression names of our rule, in order.
const RULE_EXPRESSIONS: [&str; 6] = ["payload", "cmp", "payload", "lookup", "objref", "immediate"];

/// The rule: `ip protocol 4 ip saddr != @ipip-nodes counter name
/// "ipip-dropped" drop`.
fn rule() -> Request {
    Request::new_rule(
        FAMILY,
        TABLE,
        CHAIN,
        &[
            // The protocol byte of the IPv4 header (RFC 791).
            Expr::NetworkPayload {
                offset: 9,
                len: 1,
                dreg: 1,
            },
            Expr::Equal {
                sreg: 1,
                value: &[crate::packet::PROTO_IPIP],
            },
            // The source address.
            Expr::NetworkPayload {
                offset: 12,
                len: 4,
                dreg: 1,
            },
            Expr::Lookup {
                set: SET,
                set_id: Some(SET_ID),
                sreg: 1,
                invert: true,
            },
            Expr::CounterRef { name: COUNTER },
            Expr::Verdict(NF_DROP),
        ],
        COMMENT,
    )
}

/// The `nft` command a failed step stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NftCommand {
    /// Opening the socket.
    Open,
    /// Reading the table, its chain, set, counter and rule.
    List,
    /// Creating (or replacing) the table.
    Create,
    /// Adding and removing node addresses.
    Elements,
    /// `nft delete table ip podroute`.
    Delete,
}

impl fmt::Display for NftCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => write!(f, "socket(NETLINK_NETFILTER)"),
            Self::List => write!(f, "nft list table {FAMILY} {TABLE}"),
            Self::Create => write!(f, "nft -f (table {FAMILY} {TABLE})"),
            Self::Elements => write!(f, "nft add/delete element {FAMILY} {TABLE} {SET}"),
            Self::Delete => write!(f, "nft delete table {FAMILY} {TABLE}"),
        }
    }
}

/// Why the filter could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {source}{}", hint(.source))]
pub struct FilterError {
    /// What was being done.
    pub command: NftCommand,
    /// The kernel's or the socket's error.
    pub source: netlink::Error,
}

/// What to do about an error whose cause is common.
fn hint(e: &netlink::Error) -> &'static str {
    match e.errno() {
        Some(netlink::Errno::NotSupported) => {
            " (this kernel has no nf_tables: load the nf_tables module)"
        }
        Some(netlink::Errno::Other(libc::EPERM)) => " (CAP_NET_ADMIN is needed)",
        _ => "",
    }
}

/// How [`IpipFilter::apply`] found the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    /// There was none: created.
    Created,
    /// Ours was there (an earlier run's): kept, its set brought up to date.
    Adopted,
    /// A table of that name that is not ours (or an older version of
    /// ours): replaced in one transaction. The reason is in
    /// [`Applied::replaced`].
    Replaced,
}

impl fmt::Display for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Adopted => "adopted",
            Self::Replaced => "replaced",
        })
    }
}

/// What [`IpipFilter::apply`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// How the table was found.
    pub installed: Installed,
    /// Why a table was replaced.
    pub replaced: Option<String>,
    /// Node addresses added to the set.
    pub added: usize,
    /// Node addresses removed from it.
    pub removed: usize,
}

/// The filter's counter of dropped packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Packets dropped.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The filter in the current network namespace (needs `CAP_NET_ADMIN`).
#[derive(Debug)]
pub struct IpipFilter {
    nft: Nftables,
}

/// What is there now.
enum Found {
    Absent,
    Ours,
    Other(String),
}

impl IpipFilter {
    /// Opens a nftables socket.
    ///
    /// # Errors
    /// When the socket cannot be opened.
    pub fn open() -> Result<IpipFilter, FilterError> {
        let nft = Nftables::open().map_err(|source| FilterError {
            command: NftCommand::Open,
            source,
        })?;
        Ok(IpipFilter { nft })
    }

    fn list_error(source: netlink::Error) -> FilterError {
        FilterError {
            command: NftCommand::List,
            source,
        }
    }

    /// Whether the table is there and exactly ours.
    fn find(&mut self) -> Result<Found, FilterError> {
        let tables = self.nft.tables(FAMILY).map_err(Self::list_error)?;
        if !tables.iter().any(|t| t.name == TABLE) {
            return Ok(Found::Absent);
        }
        let chains = self.nft.chains(FAMILY, TABLE).map_err(Self::list_error)?;
        let chain_ok = matches!(chains.as_slice(), [c] if c.name == CHAIN
            && c.hook == Some(Hook::INPUT)
            && c.policy == Some(NF_ACCEPT)
            && c.kind.as_deref() == Some("filter"));
        if !chain_ok {
            return Ok(Found::Other(format!(
                "its chains are {:?}, not the one input chain {CHAIN}",
                chains.iter().map(|c| &c.name).collect::<Vec<_>>()
            )));
        }
        let sets = self.nft.sets(FAMILY, TABLE).map_err(Self::list_error)?;
        if !sets
            .iter()
            .any(|s| s.name == SET && s.key_len == 4 && s.flags == 0)
        {
            return Ok(Found::Other(format!(
                "it has no set {SET} of IPv4 addresses"
            )));
        }
        let counters = self.nft.counters(FAMILY, TABLE).map_err(Self::list_error)?;
        if !counters.iter().any(|c| c.name == COUNTER) {
            return Ok(Found::Other(format!("it has no counter {COUNTER}")));
        }
        let rules = self
            .nft
            .rules(FAMILY, TABLE, CHAIN)
            .map_err(Self::list_error)?;
        let rule_ok = matches!(rules.as_slice(), [r] if r.comment.as_deref() == Some(COMMENT)
            && r.expressions.iter().map(String::as_str).eq(RULE_EXPRESSIONS));
        if !rule_ok {
            return Ok(Found::Other(format!(
                "its chain {CHAIN} holds {} rules, not exactly ours ({COMMENT:?})",
                rules.len()
            )));
        }
        Ok(Found::Ours)
    }

    /// The requests that create the whole table with `nodes` in its set.
    fn create(nodes: &BTreeSet<Ipv4Addr>) -> Vec<Request> {
        let keys: Vec<[u8; 4]> = nodes.iter().map(Ipv4Addr::octets).collect();
        let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        let mut requests = vec![
            Request::new_table(FAMILY, TABLE),
            Request::new_counter(FAMILY, TABLE, COUNTER),
            Request::new_ipv4_set(FAMILY, TABLE, SET, SET_ID),
            Request::new_filter_chain(FAMILY, TABLE, CHAIN, Hook::INPUT, NF_ACCEPT),
            rule(),
        ];
        requests.extend(Request::new_elements(FAMILY, TABLE, SET, &keys));
        requests
    }

    /// Makes the filter exist with exactly `nodes` (the cluster's node
    /// addresses) in its set: created if missing, adopted if there,
    /// replaced if it is not ours.
    ///
    /// # Errors
    /// When the kernel refuses (nothing changed then: each step is one
    /// transaction), or a dump fails.
    pub fn apply(&mut self, nodes: &BTreeSet<Ipv4Addr>) -> Result<Applied, FilterError> {
        let create_error = |source| FilterError {
            command: NftCommand::Create,
            source,
        };
        match self.find()? {
            Found::Absent => {
                self.nft
                    .transaction(&Self::create(nodes))
                    .map_err(create_error)?;
                Ok(Applied {
                    installed: Installed::Created,
                    replaced: None,
                    added: nodes.len(),
                    removed: 0,
                })
            }
            Found::Other(why) => {
                let mut requests = vec![Request::del_table(FAMILY, TABLE)];
                requests.extend(Self::create(nodes));
                self.nft.transaction(&requests).map_err(create_error)?;
                Ok(Applied {
                    installed: Installed::Replaced,
                    replaced: Some(why),
                    added: nodes.len(),
                    removed: 0,
                })
            }
            Found::Ours => {
                let now = self.nodes()?;
                let add: Vec<[u8; 4]> = nodes.difference(&now).map(Ipv4Addr::octets).collect();
                let del: Vec<[u8; 4]> = now.difference(nodes).map(Ipv4Addr::octets).collect();
                let add_keys: Vec<&[u8]> = add.iter().map(|k| &k[..]).collect();
                let del_keys: Vec<&[u8]> = del.iter().map(|k| &k[..]).collect();
                let mut requests = Request::new_elements(FAMILY, TABLE, SET, &add_keys);
                requests.extend(Request::del_elements(FAMILY, TABLE, SET, &del_keys));
                self.nft
                    .transaction(&requests)
                    .map_err(|source| FilterError {
                        command: NftCommand::Elements,
                        source,
                    })?;
                Ok(Applied {
                    installed: Installed::Adopted,
                    replaced: None,
                    added: add.len(),
                    removed: del.len(),
                })
            }
        }
    }

    /// The node addresses in the set now.
    ///
    /// # Errors
    /// When the dump fails (`ENOENT`: no table).
    pub fn nodes(&mut self) -> Result<BTreeSet<Ipv4Addr>, FilterError> {
        let keys = self
            .nft
            .set_elements(FAMILY, TABLE, SET)
            .map_err(Self::list_error)?;
        Ok(keys
            .iter()
            .filter_map(|k| k.first_chunk::<4>().map(|a| Ipv4Addr::from(*a)))
            .collect())
    }

    /// What the filter has dropped; `None` when there is no filter.
    ///
    /// # Errors
    /// When the dump fails.
    pub fn dropped(&mut self) -> Result<Option<Dropped>, FilterError> {
        let tables = self.nft.tables(FAMILY).map_err(Self::list_error)?;
        if !tables.iter().any(|t| t.name == TABLE) {
            return Ok(None);
        }
        let counters: Vec<Counter> = self.nft.counters(FAMILY, TABLE).map_err(Self::list_error)?;
        Ok(counters
            .iter()
            .find(|c| c.name == COUNTER)
            .map(|c| Dropped {
                packets: c.packets,
                bytes: c.bytes,
            }))
    }

    /// `nft delete table ip podroute`: IPIP is accepted from anyone again.
    /// Returns whether there was a table.
    ///
    /// # Errors
    /// When the kernel refuses.
    pub fn remove(&mut self) -> Result<bool, FilterError> {
        let tables = self.nft.tables(FAMILY).map_err(Self::list_error)?;
        if !tables.iter().any(|t| t.name == TABLE) {
            return Ok(false);
        }
        self.nft
            .transaction(&[Request::del_table(FAMILY, TABLE)])
            .map_err(|source| FilterError {
                command: NftCommand::Delete,
                source,
            })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink::nftables::parse::Rule;

    #[test]
    fn the_rule_we_write_is_the_rule_we_recognise() {
        let r = rule();
        let mut body = vec![r.family.0, 0, 0, 0];
        body.extend_from_slice(&r.attributes);
        let parsed = Rule::parse(&body).unwrap();
        assert_eq!(parsed.comment.as_deref(), Some(COMMENT));
        assert!(
            parsed
                .expressions
                .iter()
                .map(String::as_str)
                .eq(RULE_EXPRESSIONS)
        );
    }

    #[test]
    fn creating_adds_every_node_and_no_element_request_when_there_are_none() {
        let nodes: BTreeSet<Ipv4Addr> = ["10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(IpipFilter::create(&nodes).len(), 6);
        assert_eq!(IpipFilter::create(&BTreeSet::new()).len(), 5);
    }

    #[test]
    fn an_error_names_the_nft_command_and_what_to_do() {
        let e = FilterError {
            command: NftCommand::Create,
            source: netlink::Error::Kernel(netlink::Errno::NotSupported),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("`nft -f (table ip podroute)` failed: "),
            "{text}"
        );
        assert!(text.contains("load the nf_tables module"), "{text}");
    }
}
