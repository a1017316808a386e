//! Dumps (`NLM_F_DUMP`) on [`Netlink`]: routes and nexthop objects read
//! with this crate's codec straight from the receive buffer (a resync of
//! 100,000 routes builds no message value per route beyond the one it
//! keeps), links and addresses as netlink-packet-route's messages.
//!
//! A dump the kernel marks interrupted (`NLM_F_DUMP_INTR`: the table
//! changed meanwhile) is retried from scratch.

use std::io;

use netlink_packet_core::{Emitable, Parseable};

use crate::consts::{NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_HDRLEN};
use crate::error::Errno;
use crate::header::{Header, MessageType, Messages, error_code};
use crate::link::{AddressMessage, LinkMessage};
use crate::nexthop::{self, Nexthop};
use crate::route::{self, Route};
use crate::socket::{Netlink, malformed};

/// How often a dump interrupted by concurrent changes is retried.
const DUMP_RETRIES: usize = 5;

impl Netlink {
    /// Dumps the messages of type `kind` answering a request with body
    /// `body`, handing each one's type and body (the bytes after the
    /// `nlmsghdr`) to `each`, which folds into a state made by `init`
    /// (made afresh when an interrupted dump is retried).
    ///
    /// # Errors
    /// When the socket fails, a reply is malformed, the kernel refuses the
    /// dump (its errno), or the dump stays interrupted after several tries.
    pub fn dump<T>(
        &mut self,
        kind: MessageType,
        body: &[u8],
        init: impl Fn() -> T,
        mut each: impl FnMut(&mut T, MessageType, &[u8]),
    ) -> io::Result<T> {
        for _ in 0..DUMP_RETRIES {
            let mut state = init();
            if !self.dump_once(kind, body, |kind, body| each(&mut state, kind, body))? {
                return Ok(state);
            }
        }
        Err(io::Error::other(
            "netlink dump interrupted by concurrent changes on every try",
        ))
    }

    /// One dump; true when the kernel marked it interrupted.
    fn dump_once(
        &mut self,
        kind: MessageType,
        body: &[u8],
        mut each: impl FnMut(MessageType, &[u8]),
    ) -> io::Result<bool> {
        let seq = self.take_seq();
        let length = u32::try_from(NLMSG_HDRLEN.saturating_add(body.len()))
            .map_err(|_| io::Error::other("dump request too long"))?;
        let header = Header {
            length,
            kind,
            flags: NLM_F_REQUEST | NLM_F_DUMP,
            sequence: seq,
            port: 0,
        };
        let mut request = Vec::with_capacity(NLMSG_HDRLEN.saturating_add(body.len()));
        request.extend_from_slice(&header.to_bytes());
        request.extend_from_slice(body);
        self.socket.send(&request, 0)?;
        let mut interrupted = false;
        loop {
            self.receive()?;
            let mut replies = Messages::new(&self.rx);
            for (header, body) in replies.by_ref() {
                if header.sequence != seq {
                    continue;
                }
                interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                match header.kind {
                    MessageType::DONE => return Ok(interrupted),
                    // struct nlmsgerr: a negative errno, then the request's
                    // header; 0 would be an ACK.
                    MessageType::ERROR => match error_code(body) {
                        0 => {}
                        code => return Err(io::Error::from_raw_os_error(code)),
                    },
                    kind => each(kind, body),
                }
            }
            if replies.malformed() {
                return Err(malformed("a message length outside its datagram"));
            }
        }
    }

    /// Every route of `family` ([`route::FAMILY_ANY`] for all) in every
    /// table (`ip route show table all`), folded into a state made by
    /// `init`. Messages that do not parse are skipped.
    ///
    /// # Errors
    /// As [`Netlink::dump`].
    pub fn fold_routes<T>(
        &mut self,
        family: u8,
        init: impl Fn() -> T,
        mut each: impl FnMut(&mut T, Route),
    ) -> io::Result<T> {
        self.dump(
            MessageType::GET_ROUTE,
            &route::dump_request(family),
            init,
            |state, kind, body| {
                if kind == MessageType::NEW_ROUTE
                    && let Some(route) = Route::parse(body)
                {
                    each(state, route);
                }
            },
        )
    }

    /// Every route of `family` in every table, as values.
    ///
    /// # Errors
    /// As [`Netlink::dump`].
    pub fn routes(&mut self, family: u8) -> io::Result<Vec<Route>> {
        self.fold_routes(family, Vec::new, Vec::push)
    }

    /// Every nexthop object (`ip nexthop show`); `None` when the kernel
    /// has none to show because it does not support them (before Linux
    /// 5.3 it refuses the dump with `EOPNOTSUPP` or `EINVAL`).
    ///
    /// # Errors
    /// As [`Netlink::dump`], for any other refusal.
    pub fn nexthops(&mut self) -> io::Result<Option<Vec<Nexthop>>> {
        let dumped = self.dump(
            MessageType::GET_NEXTHOP,
            &nexthop::dump_request(),
            Vec::new,
            |all: &mut Vec<Nexthop>, kind, body| {
                if kind == MessageType::NEW_NEXTHOP
                    && let Some(n) = Nexthop::parse(body)
                {
                    all.push(n);
                }
            },
        );
        match dumped {
            Ok(all) => Ok(Some(all)),
            Err(e) if matches!(Errno::of(&e), Some(Errno::NotSupported | Errno::Invalid)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every link (`ip link show`).
    ///
    /// # Errors
    /// As [`Netlink::dump`], and when a link message does not parse.
    pub fn links(&mut self) -> io::Result<Vec<LinkMessage>> {
        self.typed_dump(
            MessageType::GET_LINK,
            MessageType::NEW_LINK,
            &LinkMessage::default(),
        )
    }

    /// Every address of `family` ([`route::FAMILY_ANY`] for all; `ip
    /// addr show`).
    ///
    /// # Errors
    /// As [`Netlink::links`].
    pub fn addresses(&mut self, family: u8) -> io::Result<Vec<AddressMessage>> {
        let mut request = AddressMessage::default();
        request.header.family = family.into();
        self.typed_dump(MessageType::GET_ADDRESS, MessageType::NEW_ADDRESS, &request)
    }

    /// A dump whose request and replies are netlink-packet-route messages.
    fn typed_dump<M>(
        &mut self,
        get: MessageType,
        reply: MessageType,
        request: &M,
    ) -> io::Result<Vec<M>>
    where
        M: Emitable + Parseable<[u8]>,
    {
        let mut body = vec![0; request.buffer_len()];
        request.emit(&mut body);
        self.dump(
            get,
            &body,
            || Ok(Vec::new()),
            |all: &mut io::Result<Vec<M>>, kind, body| {
                if kind != reply {
                    return;
                }
                match (all.as_mut(), M::parse(body)) {
                    (Ok(all), Ok(message)) => all.push(message),
                    (Ok(_), Err(e)) => *all = Err(malformed(&e.to_string())),
                    (Err(_), _) => {}
                }
            },
        )?
    }
}
