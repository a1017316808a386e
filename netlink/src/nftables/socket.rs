//! [`Nftables`]: one `NETLINK_NETFILTER` socket for nftables transactions
//! and dumps.

use std::collections::BTreeSet;
use std::io;

use netlink_sys::protocols::NETLINK_NETFILTER;

use super::parse::{self, Chain, Counter, Rule, Set, Table};
use super::{Family, Request, emit_be32, emit_str};
use crate::consts::{
    NFGENMSG_LEN, NFNETLINK_V0, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES,
    NFPROTO_UNSPEC, NFT_MSG_GETCHAIN, NFT_MSG_GETOBJ, NFT_MSG_GETRULE, NFT_MSG_GETSET,
    NFT_MSG_GETSETELEM, NFT_MSG_GETTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWOBJ, NFT_MSG_NEWRULE,
    NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE, NFT_OBJECT_COUNTER, NFTA_OBJ_TABLE,
    NFTA_OBJ_TYPE, NFTA_RULE_CHAIN, NFTA_RULE_TABLE, NFTA_SET_ELEM_LIST_SET,
    NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_TABLE, NLM_F_ACK, NLM_F_REQUEST, NLMSG_HDRLEN,
};
use crate::error::{Errno, Error};
use crate::header::{Header, MessageType, Messages, align, error_code};
use crate::socket::{Netlink, Received, malformed, receive_flags};

/// The message type of nftables message `kind` (`NFT_MSG_*`).
fn message_type(kind: u8) -> MessageType {
    MessageType(u16::from(NFNL_SUBSYS_NFTABLES) << 8 | u16::from(kind))
}

/// `struct nfgenmsg`: family, version, resource id (big-endian).
fn nfgenmsg(family: u8, res_id: u16) -> [u8; NFGENMSG_LEN] {
    let [r0, r1] = res_id.to_be_bytes();
    [family, NFNETLINK_V0, r0, r1]
}

/// Appends one message (header, `nfgenmsg`, attributes) to `buf`.
fn push(
    buf: &mut Vec<u8>,
    kind: MessageType,
    flags: u16,
    sequence: u32,
    genmsg: [u8; 4],
    attrs: &[u8],
) {
    let len = NLMSG_HDRLEN
        .saturating_add(NFGENMSG_LEN)
        .saturating_add(attrs.len());
    let header = Header {
        length: u32::try_from(len).unwrap_or(u32::MAX),
        kind,
        flags,
        sequence,
        port: 0,
    };
    buf.extend_from_slice(&header.to_bytes());
    buf.extend_from_slice(&genmsg);
    buf.extend_from_slice(attrs);
    buf.resize(buf.len().saturating_add(align(len).saturating_sub(len)), 0);
}

/// An I/O error from a dump as this crate's [`Error`]: the kernel's errno
/// as [`Error::Kernel`].
fn dump_error(e: io::Error) -> Error {
    match Errno::of(&e) {
        Some(errno) if e.kind() != io::ErrorKind::WouldBlock => Error::Kernel(errno),
        _ => Error::Io(e),
    }
}

/// One `NETLINK_NETFILTER` socket, in the network namespace of the thread
/// that opened it. Needs `CAP_NET_ADMIN` there, for dumps too.
#[derive(Debug)]
pub struct Nftables {
    nl: Netlink,
}

impl Nftables {
    /// Opens a socket in the current network namespace.
    ///
    /// # Errors
    /// When the socket cannot be created or bound.
    pub fn open() -> Result<Nftables, Error> {
        Ok(Nftables {
            nl: Netlink::open_protocol(NETLINK_NETFILTER)?,
        })
    }

    /// Sends `requests` as one transaction (`nft -f` of them): the kernel
    /// applies every one or none.
    ///
    /// Each request asks for an ACK. nfnetlink handles the whole batch
    /// inside the `sendmsg` call (replaying it itself after loading a
    /// module), so when `send` returns every reply is queued: they are read
    /// without waiting.
    ///
    /// # Errors
    /// [`Error::Kernel`] with the first refusal's errno (the transaction
    /// was not applied); [`Error::Io`] when the socket fails or a reply is
    /// missing.
    pub fn transaction(&mut self, requests: &[Request]) -> Result<(), Error> {
        if requests.is_empty() {
            return Ok(());
        }
        let subsystem = u16::from(NFNL_SUBSYS_NFTABLES);
        let mut tx = Vec::with_capacity(4096);
        let begin = self.nl.take_seq();
        push(
            &mut tx,
            MessageType(NFNL_MSG_BATCH_BEGIN),
            NLM_F_REQUEST,
            begin,
            nfgenmsg(NFPROTO_UNSPEC, subsystem),
            &[],
        );
        let mut pending = BTreeSet::new();
        for r in requests {
            let seq = self.nl.take_seq();
            pending.insert(seq);
            push(
                &mut tx,
                message_type(r.kind),
                NLM_F_REQUEST | NLM_F_ACK | r.flags,
                seq,
                nfgenmsg(r.family.0, 0),
                &r.attributes,
            );
        }
        let end = self.nl.take_seq();
        push(
            &mut tx,
            MessageType(NFNL_MSG_BATCH_END),
            NLM_F_REQUEST,
            end,
            nfgenmsg(NFPROTO_UNSPEC, subsystem),
            &[],
        );
        let sent = self.nl.socket.send(&tx, 0)?;
        if sent != tx.len() {
            return Err(Error::Io(io::Error::other(format!(
                "nftables send took {sent} of {} bytes",
                tx.len()
            ))));
        }
        let mut refused = None;
        while !pending.is_empty() {
            match receive_flags(&self.nl.socket, &mut self.nl.rx, libc::MSG_DONTWAIT) {
                Ok(Received::Whole) => {}
                Ok(Received::Cut { len }) => {
                    return Err(Error::Io(io::Error::other(format!(
                        "nftables reply of {len} bytes truncated"
                    ))));
                }
                // Every reply the batch gets is queued by now.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::Io(e)),
            }
            let mut replies = Messages::new(&self.nl.rx);
            for (header, body) in replies.by_ref() {
                if header.kind != MessageType::ERROR || !(begin..=end).contains(&header.sequence) {
                    continue;
                }
                pending.remove(&header.sequence);
                match error_code(body) {
                    0 => {}
                    code => {
                        refused.get_or_insert(Errno::from_raw(code));
                    }
                }
            }
            if replies.malformed() {
                return Err(Error::Io(malformed(
                    "a message length outside its datagram",
                )));
            }
        }
        match refused {
            Some(errno) => Err(Error::Kernel(errno)),
            None if pending.is_empty() => Ok(()),
            None => Err(Error::Io(io::Error::other(format!(
                "nftables answered {} of {} requests",
                requests.len().saturating_sub(pending.len()),
                requests.len()
            )))),
        }
    }

    /// Dumps objects with `get`, keeping the replies of type `new` that
    /// `parse` reads.
    fn dump<T>(
        &mut self,
        get: u8,
        new: u8,
        family: Family,
        attrs: &[u8],
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>, Error> {
        let mut body = nfgenmsg(family.0, 0).to_vec();
        body.extend_from_slice(attrs);
        let want = message_type(new);
        self.nl
            .dump(message_type(get), &body, Vec::new, |out, kind, reply| {
                if kind == want
                    && let Some(v) = parse(reply)
                {
                    out.push(v);
                }
            })
            .map_err(dump_error)
    }

    /// `nft list tables FAMILY`.
    ///
    /// # Errors
    /// When the dump fails.
    pub fn tables(&mut self, family: Family) -> Result<Vec<Table>, Error> {
        self.dump(
            NFT_MSG_GETTABLE,
            NFT_MSG_NEWTABLE,
            family,
            &[],
            Table::parse,
        )
    }

    /// The chains of `table` (`nft list table` shows them).
    ///
    /// # Errors
    /// When the dump fails.
    pub fn chains(&mut self, family: Family, table: &str) -> Result<Vec<Chain>, Error> {
        let chains = self.dump(
            NFT_MSG_GETCHAIN,
            NFT_MSG_NEWCHAIN,
            family,
            &[],
            Chain::parse,
        )?;
        Ok(chains.into_iter().filter(|c| c.table == table).collect())
    }

    /// The sets of `table` (`nft list sets`).
    ///
    /// # Errors
    /// When the dump fails (`ENOENT`: no such table).
    pub fn sets(&mut self, family: Family, table: &str) -> Result<Vec<Set>, Error> {
        let mut attrs = Vec::new();
        emit_str(&mut attrs, NFTA_SET_TABLE, table);
        let sets = self.dump(NFT_MSG_GETSET, NFT_MSG_NEWSET, family, &attrs, Set::parse)?;
        Ok(sets.into_iter().filter(|s| s.table == table).collect())
    }

    /// The rules of `chain` in `table` (`nft -a list chain`).
    ///
    /// # Errors
    /// When the dump fails (`ENOENT`: no such table or chain).
    pub fn rules(&mut self, family: Family, table: &str, chain: &str) -> Result<Vec<Rule>, Error> {
        let mut attrs = Vec::new();
        emit_str(&mut attrs, NFTA_RULE_TABLE, table);
        emit_str(&mut attrs, NFTA_RULE_CHAIN, chain);
        let rules = self.dump(
            NFT_MSG_GETRULE,
            NFT_MSG_NEWRULE,
            family,
            &attrs,
            Rule::parse,
        )?;
        Ok(rules
            .into_iter()
            .filter(|r| r.table == table && r.chain == chain)
            .collect())
    }

    /// The named counters of `table` (`nft list counters table`).
    ///
    /// # Errors
    /// When the dump fails.
    pub fn counters(&mut self, family: Family, table: &str) -> Result<Vec<Counter>, Error> {
        let mut attrs = Vec::new();
        emit_str(&mut attrs, NFTA_OBJ_TABLE, table);
        emit_be32(&mut attrs, NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
        let counters = self.dump(
            NFT_MSG_GETOBJ,
            NFT_MSG_NEWOBJ,
            family,
            &attrs,
            Counter::parse,
        )?;
        Ok(counters.into_iter().filter(|c| c.table == table).collect())
    }

    /// The keys of the elements of `set` in `table` (`nft list set`).
    ///
    /// # Errors
    /// When the dump fails (`ENOENT`: no such table or set).
    pub fn set_elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let mut attrs = Vec::new();
        emit_str(&mut attrs, NFTA_SET_ELEM_LIST_TABLE, table);
        emit_str(&mut attrs, NFTA_SET_ELEM_LIST_SET, set);
        let batches = self.dump(
            NFT_MSG_GETSETELEM,
            NFT_MSG_NEWSETELEM,
            family,
            &attrs,
            |body| Some(parse::set_element_keys(body)),
        )?;
        Ok(batches.into_iter().flatten().collect())
    }
}
