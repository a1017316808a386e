//! `struct nlmsghdr` (<linux/netlink.h>) and the walk over the messages of
//! one datagram.
//!
//! ```text
//! 0      4      6       8          12      16
//! | len  | type | flags | sequence | port  | body … (padded to 4)
//! ```
//!
//! All fields are in host byte order. `len` counts the header; messages in
//! a datagram start on 4-byte boundaries (`NLMSG_ALIGN`).

use std::fmt;

use crate::consts::{self, NLMSG_HDRLEN};

/// A message type (`nlmsg_type`): the `RTM_*` and `NLMSG_*` values callers
/// match on are named; any other value is kept as it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageType(pub u16);

impl MessageType {
    /// `NLMSG_ERROR`: an error or an ACK.
    pub const ERROR: Self = Self(consts::NLMSG_ERROR);
    /// `NLMSG_DONE`: the end of a dump.
    pub const DONE: Self = Self(consts::NLMSG_DONE);
    /// `RTM_NEWLINK`.
    pub const NEW_LINK: Self = Self(consts::RTM_NEWLINK);
    /// `RTM_DELLINK`.
    pub const DEL_LINK: Self = Self(consts::RTM_DELLINK);
    /// `RTM_GETLINK`.
    pub const GET_LINK: Self = Self(consts::RTM_GETLINK);
    /// `RTM_SETLINK`.
    pub const SET_LINK: Self = Self(consts::RTM_SETLINK);
    /// `RTM_NEWADDR`.
    pub const NEW_ADDRESS: Self = Self(consts::RTM_NEWADDR);
    /// `RTM_DELADDR`.
    pub const DEL_ADDRESS: Self = Self(consts::RTM_DELADDR);
    /// `RTM_GETADDR`.
    pub const GET_ADDRESS: Self = Self(consts::RTM_GETADDR);
    /// `RTM_NEWROUTE`.
    pub const NEW_ROUTE: Self = Self(consts::RTM_NEWROUTE);
    /// `RTM_DELROUTE`.
    pub const DEL_ROUTE: Self = Self(consts::RTM_DELROUTE);
    /// `RTM_GETROUTE`.
    pub const GET_ROUTE: Self = Self(consts::RTM_GETROUTE);
    /// `RTM_NEWNEXTHOP`.
    pub const NEW_NEXTHOP: Self = Self(consts::RTM_NEWNEXTHOP);
    /// `RTM_DELNEXTHOP`.
    pub const DEL_NEXTHOP: Self = Self(consts::RTM_DELNEXTHOP);
    /// `RTM_GETNEXTHOP`.
    pub const GET_NEXTHOP: Self = Self(consts::RTM_GETNEXTHOP);
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::ERROR => "NLMSG_ERROR",
            Self::DONE => "NLMSG_DONE",
            Self::NEW_LINK => "RTM_NEWLINK",
            Self::DEL_LINK => "RTM_DELLINK",
            Self::GET_LINK => "RTM_GETLINK",
            Self::SET_LINK => "RTM_SETLINK",
            Self::NEW_ADDRESS => "RTM_NEWADDR",
            Self::DEL_ADDRESS => "RTM_DELADDR",
            Self::GET_ADDRESS => "RTM_GETADDR",
            Self::NEW_ROUTE => "RTM_NEWROUTE",
            Self::DEL_ROUTE => "RTM_DELROUTE",
            Self::GET_ROUTE => "RTM_GETROUTE",
            Self::NEW_NEXTHOP => "RTM_NEWNEXTHOP",
            Self::DEL_NEXTHOP => "RTM_DELNEXTHOP",
            Self::GET_NEXTHOP => "RTM_GETNEXTHOP",
            Self(other) => return write!(f, "MessageType({other})"),
        };
        f.write_str(name)
    }
}

/// The fields of a `struct nlmsghdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `nlmsg_len`: the message's length, header included.
    pub length: u32,
    /// `nlmsg_type`.
    pub kind: MessageType,
    /// `nlmsg_flags` (`NLM_F_*`).
    pub flags: u16,
    /// `nlmsg_seq`: the request's sequence number, echoed in its replies.
    pub sequence: u32,
    /// `nlmsg_pid`: the sender's port (0: the kernel). In a notification,
    /// the port of the socket whose request caused the change.
    pub port: u32,
}

impl Header {
    /// The header at the start of `bytes`; `None` when fewer than 16 bytes
    /// are there.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b = bytes.first_chunk::<NLMSG_HDRLEN>()?;
        let [
            l0,
            l1,
            l2,
            l3,
            t0,
            t1,
            f0,
            f1,
            s0,
            s1,
            s2,
            s3,
            p0,
            p1,
            p2,
            p3,
        ] = *b;
        Some(Self {
            length: u32::from_ne_bytes([l0, l1, l2, l3]),
            kind: MessageType(u16::from_ne_bytes([t0, t1])),
            flags: u16::from_ne_bytes([f0, f1]),
            sequence: u32::from_ne_bytes([s0, s1, s2, s3]),
            port: u32::from_ne_bytes([p0, p1, p2, p3]),
        })
    }

    /// The 16 bytes of this header.
    pub fn to_bytes(&self) -> [u8; NLMSG_HDRLEN] {
        let mut out = [0; NLMSG_HDRLEN];
        let fields = self
            .length
            .to_ne_bytes()
            .into_iter()
            .chain(self.kind.0.to_ne_bytes())
            .chain(self.flags.to_ne_bytes())
            .chain(self.sequence.to_ne_bytes())
            .chain(self.port.to_ne_bytes());
        for (slot, byte) in out.iter_mut().zip(fields) {
            *slot = byte;
        }
        out
    }
}

/// `NLMSG_ALIGN`: `len` rounded up to a multiple of 4 (saturating).
pub fn align(len: usize) -> usize {
    len.checked_next_multiple_of(4).unwrap_or(usize::MAX)
}

/// The messages of one datagram, each as its header and body (the bytes
/// after the header, up to `nlmsg_len`). The walk ends at the end of the
/// datagram, or at a message whose length is shorter than its header or
/// longer than what is left: [`Messages::malformed`] then says so.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl<'a> Messages<'a> {
    /// The messages in `datagram`.
    pub fn new(datagram: &'a [u8]) -> Self {
        Self {
            rest: datagram,
            malformed: false,
        }
    }

    /// Whether the walk stopped at a malformed message (rather than at the
    /// end of the datagram, or at a tail shorter than a header, which the
    /// kernel never sends and which is ignored).
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = (Header, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = Header::parse(self.rest)?;
        let len = usize::try_from(header.length).unwrap_or(usize::MAX);
        let Some(body) = self.rest.get(NLMSG_HDRLEN..len) else {
            self.malformed = true;
            self.rest = &[];
            return None;
        };
        self.rest = self.rest.get(align(len)..).unwrap_or_default();
        Some((header, body))
    }
}

/// The errno of an `NLMSG_ERROR` body (`struct nlmsgerr`: a negative errno,
/// then the request's header), as a positive number; 0 for an ACK, and for
/// a body too short to hold one.
pub fn error_code(body: &[u8]) -> i32 {
    body.first_chunk::<4>()
        .map_or(0, |b| i32::from_ne_bytes(*b))
        .saturating_neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: MessageType, body: &[u8]) -> Vec<u8> {
        let header = Header {
            length: u32::try_from(NLMSG_HDRLEN + body.len()).unwrap(),
            kind,
            flags: 2,
            sequence: 7,
            port: 99,
        };
        let mut m = header.to_bytes().to_vec();
        m.extend_from_slice(body);
        m.resize(align(m.len()), 0);
        m
    }

    #[test]
    fn a_header_reads_back_as_written() {
        let h = Header {
            length: 36,
            kind: MessageType::NEW_ROUTE,
            flags: 0x0505,
            sequence: 0x0102_0304,
            port: 4242,
        };
        assert_eq!(Header::parse(&h.to_bytes()), Some(h));
        assert_eq!(Header::parse(&h.to_bytes()[..15]), None);
    }

    #[test]
    fn messages_of_a_datagram_are_walked_with_padding() {
        let mut d = message(MessageType::NEW_ROUTE, &[1, 2, 3]);
        d.extend(message(MessageType::DONE, &[0; 4]));
        let mut walk = Messages::new(&d);
        let (h, body) = walk.next().unwrap();
        assert_eq!((h.kind, body), (MessageType::NEW_ROUTE, &[1u8, 2, 3][..]));
        let (h, body) = walk.next().unwrap();
        assert_eq!((h.kind, body.len()), (MessageType::DONE, 4));
        assert!(walk.next().is_none());
        assert!(!walk.malformed());
    }

    #[test]
    fn a_length_shorter_than_the_header_or_past_the_end_stops_the_walk() {
        for bad in [0u32, 15, 1000] {
            let mut d = message(MessageType::NEW_ROUTE, &[0; 8]);
            d[..4].copy_from_slice(&bad.to_ne_bytes());
            let mut walk = Messages::new(&d);
            assert!(walk.next().is_none(), "length {bad}");
            assert!(walk.malformed());
        }
        assert!(Messages::new(&[0xff; 5]).next().is_none());
    }

    #[test]
    fn an_error_body_gives_its_positive_errno_and_an_ack_zero() {
        assert_eq!(error_code(&(-17i32).to_ne_bytes()), 17);
        assert_eq!(error_code(&0i32.to_ne_bytes()), 0);
        assert_eq!(error_code(&[1, 2]), 0);
        assert_eq!(error_code(&i32::MIN.to_ne_bytes()), i32::MAX);
    }

    #[test]
    fn message_types_debug_as_their_kernel_names() {
        assert_eq!(format!("{:?}", MessageType::NEW_ROUTE), "RTM_NEWROUTE");
        assert_eq!(format!("{:?}", MessageType(77)), "MessageType(77)");
    }
}
