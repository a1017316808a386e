//! Bytes ↔ BGP messages.
//!
//! - [`Framer`] turns TCP read chunks into whole messages, enforcing the
//!   4096 / 65535 length limits as soon as a header arrives.
//! - [`Message::decode`] parses one message under a [`DecodeContext`]: the
//!   negotiated 4-octet AS, ADD-PATH per family and direction, extended
//!   messages, and iBGP/eBGP. [`Message::encode`] writes it back into a
//!   `BytesMut`, back-patching lengths.
//! - Malformed input is data: an UPDATE decodes to its routes plus the
//!   [`AttrFault`]s RFC 7606 lets the session survive ([`Verdict`]); what must
//!   reset the session is an error whose [`MessageError::notification`] is
//!   the exact NOTIFICATION of RFC 4271 §6.
//! - Unknown capabilities and attributes keep their bytes and round-trip.
//!
//! Code points live in [`iana`]. Nothing in this module panics, and lints
//! deny the constructs that could (indexing, unwrap, unchecked arithmetic).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

pub mod attr;
mod capability;
mod context;
mod error;
mod framer;
mod header;
pub mod iana;
mod message;
mod notification;
mod open;
mod prefix;
mod reader;
mod route_refresh;
mod update;

pub use attr::{
    Aggregator, AsPath, AttrValue, LargeCommunity, MpNlri, MpReach, MpUnreach, NextHop, Origin,
    PathAttribute, Segment, SegmentKind,
};
pub use capability::{
    AddPathFamily, Capability, ExtendedNextHopFamily, GracefulRestartFamily, LlgrFamily, gr_flags,
};
pub use context::{AddPath, DecodeContext, Family, PeerKind};
pub use error::{
    AttrFault, AttrProblem, EncodeError, FaultAction, HeaderError, MessageError, NlriField,
    OpenError, OpenPart, RouteRefreshError, UpdateError, Verdict,
};
pub use framer::Framer;
pub use header::{HEADER_LEN, Header, MAX_EXTENDED_LEN, MAX_LEN};
pub use message::{Decoded, Message};
pub use notification::{MAX_SHUTDOWN_COMMUNICATION, Notification};
pub use open::{Open, OpenCheck, OptParam};
pub use prefix::Prefix;
pub use route_refresh::RouteRefresh;
pub use update::{Update, UpdateDecode};
