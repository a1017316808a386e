//! Decode errors, grouped by the NOTIFICATION they cause, and the RFC 7606
//! verdicts for malformed UPDATE attributes that do not reset the session.
//!
//! An `Err` from a decoder always means "reset the session": it carries
//! the exact NOTIFICATION code, subcode and data of RFC 4271 §6 through
//! [`MessageError::notification`]. Everything RFC 7606 lets a session
//! survive is not an error but an [`AttrFault`] next to the decoded UPDATE.

use std::net::Ipv4Addr;

use thiserror::Error;

use super::iana::notify;
use super::notification::Notification;

/// A message header error (RFC 4271 §6.1): NOTIFICATION code 1.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The 16-byte marker is not all ones: subcode 1.
    #[error("message header marker is not all ones (connection not synchronized)")]
    NotSynchronized,
    /// The length field is below 19, above the session's limit, or wrong for
    /// the message type: subcode 2, data = the length field.
    #[error("bad message length {length}")]
    BadLength {
        /// The length field as received.
        length: u16,
    },
    /// An unknown message type: subcode 3, data = the type.
    #[error("bad message type {msg_type}")]
    BadType {
        /// The type field as received.
        msg_type: u8,
    },
}

impl HeaderError {
    /// The NOTIFICATION that reports this error.
    pub fn notification(&self) -> Notification {
        use notify::header::*;
        match *self {
            HeaderError::NotSynchronized => Notification::new(
                notify::MESSAGE_HEADER,
                CONNECTION_NOT_SYNCHRONIZED,
                Vec::new(),
            ),
            HeaderError::BadLength { length } => Notification::new(
                notify::MESSAGE_HEADER,
                BAD_MESSAGE_LENGTH,
                length.to_be_bytes().to_vec(),
            ),
            HeaderError::BadType { msg_type } => {
                Notification::new(notify::MESSAGE_HEADER, BAD_MESSAGE_TYPE, vec![msg_type])
            }
        }
    }
}

/// Which part of an OPEN could not be parsed (NOTIFICATION 2/0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenPart {
    /// The fixed fields are cut short.
    FixedFields,
    /// The optional parameters overrun their length or leave bytes over.
    OptionalParameters,
    /// A known capability has a length its RFC does not allow.
    Capability(u8),
}

/// An OPEN message error (RFC 4271 §6.2): NOTIFICATION code 2.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OpenError {
    /// Version other than 4: subcode 1, data = 4 (the version we support).
    #[error("unsupported BGP version {version}")]
    UnsupportedVersion {
        /// The version received.
        version: u8,
    },
    /// The peer's AS is not the configured one: subcode 2.
    #[error("bad peer AS {received} (configured {expected})")]
    BadPeerAs {
        /// The configured AS.
        expected: u32,
        /// The AS the peer announced.
        received: u32,
    },
    /// BGP identifier 0, or equal to ours on iBGP: subcode 3.
    #[error("bad BGP identifier {id}")]
    BadBgpIdentifier {
        /// The identifier received.
        id: Ipv4Addr,
    },
    /// An optional parameter other than capabilities: subcode 4.
    #[error("unsupported optional parameter type {param_type}")]
    UnsupportedOptionalParameter {
        /// The parameter type.
        param_type: u8,
    },
    /// Hold time 1 or 2 seconds, or below our minimum: subcode 6.
    #[error("unacceptable hold time {hold_time}s")]
    UnacceptableHoldTime {
        /// The hold time received.
        hold_time: u16,
    },
    /// A capability we require was not offered: subcode 7, data = the
    /// capability we wanted (code, length, value; RFC 5492 §5).
    #[error("required capability {code} not offered by the peer")]
    UnsupportedCapability {
        /// The missing capability's code.
        code: u8,
        /// Its encoding, sent back as the NOTIFICATION data.
        data: Vec<u8>,
    },
    /// A recognised part is malformed: subcode 0 (Unspecific).
    #[error("malformed OPEN: {part:?}")]
    Malformed {
        /// What could not be parsed.
        part: OpenPart,
    },
}

impl OpenError {
    /// The NOTIFICATION that reports this error.
    pub fn notification(&self) -> Notification {
        use notify::open::*;
        let (subcode, data) = match self {
            OpenError::UnsupportedVersion { .. } => (
                UNSUPPORTED_VERSION,
                u16::from(super::iana::BGP_VERSION).to_be_bytes().to_vec(),
            ),
            OpenError::BadPeerAs { .. } => (BAD_PEER_AS, Vec::new()),
            OpenError::BadBgpIdentifier { .. } => (BAD_BGP_IDENTIFIER, Vec::new()),
            OpenError::UnsupportedOptionalParameter { .. } => {
                (UNSUPPORTED_OPTIONAL_PARAMETER, Vec::new())
            }
            OpenError::UnacceptableHoldTime { .. } => (UNACCEPTABLE_HOLD_TIME, Vec::new()),
            OpenError::UnsupportedCapability { data, .. } => (UNSUPPORTED_CAPABILITY, data.clone()),
            OpenError::Malformed { .. } => (UNSPECIFIC, Vec::new()),
        };
        Notification::new(notify::OPEN_MESSAGE, subcode, data)
    }
}

/// Which prefix field of an UPDATE could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NlriField {
    /// Withdrawn Routes.
    Withdrawn,
    /// Network Layer Reachability Information.
    Nlri,
    /// The NLRI inside MP_REACH_NLRI.
    MpReach,
    /// The withdrawn routes inside MP_UNREACH_NLRI.
    MpUnreach,
}

/// An UPDATE error that RFC 7606 still answers with a session reset:
/// NOTIFICATION code 3.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UpdateError {
    /// Withdrawn Routes Length or Total Path Attribute Length runs past the
    /// message (RFC 4271 §6.3): subcode 1.
    #[error("withdrawn routes or path attribute length overruns the UPDATE")]
    LengthOverrun,
    /// MP_REACH_NLRI or MP_UNREACH_NLRI appears twice (RFC 7606 §3g):
    /// subcode 1.
    #[error("attribute {code} (MP_REACH/MP_UNREACH) appears twice")]
    DuplicateMpAttribute {
        /// 14 or 15.
        code: u8,
    },
    /// An attribute flagged well-known that we do not know (RFC 4271 §6.3):
    /// subcode 2, data = the attribute.
    #[error("unrecognized well-known attribute {code}")]
    UnrecognizedWellKnown {
        /// The attribute type code.
        code: u8,
        /// The whole attribute (flags, type, length, value).
        attribute: Vec<u8>,
    },
    /// A prefix with a length above 32 / 128 or cut short (RFC 7606 §5.3):
    /// subcode 10.
    #[error("invalid network field in {field:?}")]
    InvalidNetworkField {
        /// The field holding the bad prefix.
        field: NlriField,
    },
    /// MP_REACH_NLRI / MP_UNREACH_NLRI is cut short or its next-hop length
    /// is invalid for the family (RFC 7606 §7.11, RFC 4760 §7): subcode 9.
    #[error("malformed attribute {code} (MP_REACH/MP_UNREACH)")]
    MalformedMpAttribute {
        /// 14 or 15.
        code: u8,
        /// The whole attribute, sent back as data.
        attribute: Vec<u8>,
    },
    /// On eBGP, the leftmost AS of AS_PATH is not the peer's
    /// (RFC 4271 §6.3): subcode 11.
    #[error("first AS in AS_PATH is {found:?}, not the peer's AS {expected}")]
    FirstAsMismatch {
        /// The peer's configured AS.
        expected: u32,
        /// The leftmost AS found, if any.
        found: Option<u32>,
    },
}

impl UpdateError {
    /// The NOTIFICATION that reports this error.
    pub fn notification(&self) -> Notification {
        use notify::update::*;
        let (subcode, data) = match self {
            UpdateError::LengthOverrun | UpdateError::DuplicateMpAttribute { .. } => {
                (MALFORMED_ATTRIBUTE_LIST, Vec::new())
            }
            UpdateError::UnrecognizedWellKnown { attribute, .. } => {
                (UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, attribute.clone())
            }
            UpdateError::InvalidNetworkField { .. } => (INVALID_NETWORK_FIELD, Vec::new()),
            UpdateError::MalformedMpAttribute { attribute, .. } => {
                (OPTIONAL_ATTRIBUTE_ERROR, attribute.clone())
            }
            UpdateError::FirstAsMismatch { .. } => (MALFORMED_AS_PATH, Vec::new()),
        };
        Notification::new(notify::UPDATE_MESSAGE, subcode, data)
    }
}

/// A ROUTE-REFRESH message error (RFC 7313 §5): NOTIFICATION code 7.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RouteRefreshError {
    /// A BoRR/EoRR message whose body is not 4 bytes: subcode 1, data = the
    /// whole message.
    #[error("ROUTE-REFRESH subtype {subtype} with invalid length {length}")]
    InvalidLength {
        /// The subtype.
        subtype: u8,
        /// The message length.
        length: usize,
        /// The complete message, returned as the NOTIFICATION data.
        message: Vec<u8>,
    },
}

impl RouteRefreshError {
    /// The NOTIFICATION that reports this error.
    pub fn notification(&self) -> Notification {
        let RouteRefreshError::InvalidLength { message, .. } = self;
        Notification::new(
            notify::ROUTE_REFRESH_MESSAGE,
            notify::route_refresh::INVALID_MESSAGE_LENGTH,
            message.clone(),
        )
    }
}

/// Any decode error: each one resets the session with its NOTIFICATION.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MessageError {
    /// Message header error (code 1).
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// OPEN message error (code 2).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// UPDATE message error (code 3).
    #[error(transparent)]
    Update(#[from] UpdateError),
    /// ROUTE-REFRESH message error (code 7).
    #[error(transparent)]
    RouteRefresh(#[from] RouteRefreshError),
}

impl MessageError {
    /// The NOTIFICATION to send before closing the session.
    pub fn notification(&self) -> Notification {
        match self {
            MessageError::Header(e) => e.notification(),
            MessageError::Open(e) => e.notification(),
            MessageError::Update(e) => e.notification(),
            MessageError::RouteRefresh(e) => e.notification(),
        }
    }
}

/// What RFC 7606 does about a malformed attribute the session survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultAction {
    /// Drop this attribute, use the rest of the UPDATE (RFC 7606 §2).
    Discard,
    /// Handle every prefix of the UPDATE as withdrawn (RFC 7606 §2).
    TreatAsWithdraw,
}

/// What was wrong with an attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttrProblem {
    /// The optional/transitive/partial flags conflict with the type (§3c).
    FlagsConflict {
        /// The flags received.
        flags: u8,
    },
    /// The length is not one the attribute allows.
    BadLength {
        /// The length received.
        length: usize,
    },
    /// A value outside the attribute's range (e.g. ORIGIN > 2).
    InvalidValue,
    /// AS_PATH / AS4_PATH structure: bad segment type, zero-length or
    /// overrunning segment.
    MalformedSegments,
    /// AS number 0 in a path or aggregator (RFC 7607).
    ZeroAs,
    /// NEXT_HOP is not a usable unicast address of another router.
    MartianNextHop(Ipv4Addr),
    /// LOCAL_PREF from an eBGP peer (§7.5).
    LocalPrefFromExternal,
    /// AS4_PATH / AS4_AGGREGATOR from a 4-octet-capable peer (RFC 6793 §6).
    FromFourOctetPeer,
    /// A second copy of the attribute (§3g: the first one is kept).
    Duplicate,
    /// A mandatory attribute is absent while NLRI are present (§3d).
    Missing,
    /// The attribute header or value runs past the path-attribute section
    /// (§4); the rest of the section is ignored.
    SectionOverrun,
    /// ORIGINATOR_ID is our own router ID (RFC 4456 §8).
    OriginatorIsUs,
    /// CLUSTER_LIST contains our cluster ID (RFC 4456 §8).
    ClusterLoop,
    /// The TLVs inside the attribute do not parse.
    MalformedTlvs,
}

/// One malformed attribute the session survives, and what was done.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttrFault {
    /// The attribute type code (0 when the header itself was cut off).
    pub code: u8,
    /// What was wrong.
    pub problem: AttrProblem,
    /// The RFC 7606 action taken.
    pub action: FaultAction,
}

/// The overall RFC 7606 outcome of decoding one UPDATE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing was wrong.
    Accepted,
    /// Some attributes were dropped; the routes stand with the rest.
    AttributesDiscarded(Vec<AttrFault>),
    /// Every prefix of the UPDATE is to be handled as withdrawn; the session
    /// stays up. Lists every fault, the discards included.
    TreatAsWithdraw(Vec<AttrFault>),
    /// The session must be reset with this NOTIFICATION.
    SessionReset(Notification),
}

impl Verdict {
    /// The verdict for a set of faults found in one UPDATE: the strongest
    /// action wins.
    pub fn from_faults(faults: &[AttrFault]) -> Verdict {
        match faults.iter().map(|f| f.action).max() {
            None => Verdict::Accepted,
            Some(FaultAction::Discard) => Verdict::AttributesDiscarded(faults.to_vec()),
            Some(FaultAction::TreatAsWithdraw) => Verdict::TreatAsWithdraw(faults.to_vec()),
        }
    }

    /// The verdict of a whole decode attempt.
    pub fn of(result: &Result<super::Decoded, MessageError>) -> Verdict {
        match result {
            Ok(decoded) => Verdict::from_faults(&decoded.faults),
            Err(e) => Verdict::SessionReset(e.notification()),
        }
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The message would exceed the session's maximum length.
    #[error("message of {length} bytes exceeds the limit of {max}")]
    TooLong {
        /// The encoded length.
        length: usize,
        /// The session's limit.
        max: usize,
    },
    /// A field exceeds what its length field can express.
    #[error("{what} of {length} bytes does not fit its length field")]
    FieldTooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        length: usize,
    },
    /// A prefix of the wrong family in a field that takes one family only.
    #[error("prefix {prefix} in a field for the other address family")]
    WrongFamily {
        /// The offending prefix.
        prefix: ipnetwork::IpNetwork,
    },
}
