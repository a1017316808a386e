//! Whole messages: header plus body, decoded under a session context.

use bytes::BytesMut;

use super::context::DecodeContext;
use super::error::{AttrFault, EncodeError, HeaderError, MessageError, Verdict};
use super::header::{self, HEADER_LEN, Header};
use super::iana::msg_type;
use super::notification::Notification;
use super::open::Open;
use super::route_refresh::RouteRefresh;
use super::update::Update;

/// A BGP message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

/// A decoded message and, for an UPDATE, the malformed attributes RFC 7606
/// let the session survive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// Faults found in an UPDATE's attributes (always empty for other types).
    pub faults: Vec<AttrFault>,
}

impl Decoded {
    /// The RFC 7606 verdict for this message.
    pub fn verdict(&self) -> Verdict {
        Verdict::from_faults(&self.faults)
    }
}

impl PartialEq<Message> for Decoded {
    fn eq(&self, other: &Message) -> bool {
        self.faults.is_empty() && &self.message == other
    }
}

impl Message {
    /// The message type code.
    pub fn msg_type(&self) -> u8 {
        match self {
            Message::Open(_) => msg_type::OPEN,
            Message::Update(_) => msg_type::UPDATE,
            Message::Notification(_) => msg_type::NOTIFICATION,
            Message::Keepalive => msg_type::KEEPALIVE,
            Message::RouteRefresh(_) => msg_type::ROUTE_REFRESH,
        }
    }

    /// Decodes one whole message (header included), as a [`super::Framer`]
    /// returns it.
    ///
    /// `Err` means: send the error's NOTIFICATION and close. An UPDATE with
    /// attributes RFC 7606 lets the session survive decodes with those
    /// faults listed in [`Decoded::faults`].
    pub fn decode(bytes: &[u8], ctx: &DecodeContext) -> Result<Decoded, MessageError> {
        let header = Header::check(bytes, ctx.extended_message)?.ok_or(HeaderError::BadLength {
            length: u16::try_from(bytes.len()).unwrap_or(u16::MAX),
        })?;
        let length = header.length();
        if usize::from(length) != bytes.len() {
            return Err(HeaderError::BadLength { length }.into());
        }
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        let mut faults = Vec::new();
        let message = match header.msg_type() {
            msg_type::OPEN => Message::Open(Open::decode_body(body)?),
            msg_type::UPDATE => {
                let decoded = Update::decode(body, ctx)?;
                faults = decoded.faults;
                Message::Update(decoded.update)
            }
            // Header::check guarantees at least code and subcode.
            msg_type::NOTIFICATION => Message::Notification(
                Notification::decode_body(body).ok_or(HeaderError::BadLength { length })?,
            ),
            msg_type::KEEPALIVE => Message::Keepalive,
            msg_type::ROUTE_REFRESH => {
                Message::RouteRefresh(RouteRefresh::decode_body(body, bytes)?)
            }
            other => return Err(HeaderError::BadType { msg_type: other }.into()),
        };
        Ok(Decoded { message, faults })
    }

    /// Appends the encoded message to `out`, under the send-direction
    /// context (ADD-PATH, 4-octet AS and the length limit).
    pub fn encode(&self, ctx: &DecodeContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start_len = out.len();
        let start = header::emit_header(out, self.msg_type());
        let result = match self {
            Message::Open(o) => o.encode_body(out),
            Message::Update(u) => u.encode_body(ctx, out),
            Message::Notification(n) => {
                n.encode_body(out);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(r) => {
                r.encode_body(out);
                Ok(())
            }
        };
        // RFC 8654 §4: OPEN and KEEPALIVE stay within 4096 bytes.
        let max = match self {
            Message::Open(_) | Message::Keepalive => header::MAX_LEN,
            _ => ctx.max_message_len(),
        };
        let result = result.and_then(|()| header::patch_length(out, start, max));
        if result.is_err() {
            out.truncate(start_len);
        }
        result
    }

    /// The encoded message as a new vector.
    pub fn to_bytes(&self, ctx: &DecodeContext) -> Result<Vec<u8>, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(ctx, &mut out)?;
        Ok(out.to_vec())
    }
}
