//! The 19-byte message header (RFC 4271 §4.1) as a checked view.

use super::error::HeaderError;
use super::iana::msg_type;

/// Length of the header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// Largest message without extended messages (RFC 4271 §4.1).
pub const MAX_LEN: usize = 4096;
/// Largest message with extended messages (RFC 8654 §4).
pub const MAX_EXTENDED_LEN: usize = 65535;

const MARKER_LEN: usize = 16;
const LENGTH_FIELD: std::ops::Range<usize> = 16..18;
const TYPE_FIELD: usize = 18;

/// A view over the first 19 bytes of a message whose marker, length and type
/// have been checked against RFC 4271 §6.1 for the given session limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    bytes: &'a [u8],
}

impl<'a> Header<'a> {
    /// Checks the header at the start of `bytes`.
    ///
    /// Returns `Ok(None)` when fewer than 19 bytes are present and nothing
    /// seen so far is wrong, so a stream framer can wait for more. The marker
    /// is checked on whatever prefix of it is present: a desynchronised
    /// stream is caught on its first byte.
    pub fn check(
        bytes: &'a [u8],
        extended_message: bool,
    ) -> Result<Option<Header<'a>>, HeaderError> {
        let marker_seen = bytes.get(..MARKER_LEN.min(bytes.len())).unwrap_or_default();
        if marker_seen.iter().any(|&b| b != 0xff) {
            return Err(HeaderError::NotSynchronized);
        }
        let Some(head) = bytes.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let header = Header { bytes: head };
        let length = header.length();
        let msg_type = header.msg_type();
        let len = usize::from(length);
        let max = if extended_message {
            MAX_EXTENDED_LEN
        } else {
            MAX_LEN
        };
        // RFC 4271 §6.1 minimum lengths per type; RFC 8654 §4 keeps OPEN and
        // KEEPALIVE at 4096 even when extended messages are negotiated.
        let (min, type_max) = match msg_type {
            msg_type::OPEN => (29, MAX_LEN),
            msg_type::UPDATE => (23, max),
            msg_type::NOTIFICATION => (21, max),
            msg_type::KEEPALIVE => (HEADER_LEN, HEADER_LEN),
            msg_type::ROUTE_REFRESH => (23, max),
            other => {
                if len < HEADER_LEN || len > max {
                    return Err(HeaderError::BadLength { length });
                }
                return Err(HeaderError::BadType { msg_type: other });
            }
        };
        if len < min || len > type_max {
            return Err(HeaderError::BadLength { length });
        }
        Ok(Some(header))
    }

    /// The total message length, header included.
    pub fn length(&self) -> u16 {
        let field = self.bytes.get(LENGTH_FIELD).unwrap_or(&[0, 0]);
        u16::from_be_bytes([
            field.first().copied().unwrap_or(0),
            field.get(1).copied().unwrap_or(0),
        ])
    }

    /// The message type.
    pub fn msg_type(&self) -> u8 {
        self.bytes.get(TYPE_FIELD).copied().unwrap_or(0)
    }
}

/// Writes a header with a zero length, to be back-patched by
/// [`patch_length`] once the body is written.
pub(crate) fn emit_header(out: &mut bytes::BytesMut, msg_type: u8) -> usize {
    use bytes::BufMut;
    let start = out.len();
    out.put_bytes(0xff, MARKER_LEN);
    out.put_u16(0);
    out.put_u8(msg_type);
    start
}

/// Fills in the length of the message that starts at `start` in `out`.
pub(crate) fn patch_length(
    out: &mut bytes::BytesMut,
    start: usize,
    max: usize,
) -> Result<(), super::EncodeError> {
    let length = out.len().saturating_sub(start);
    if length > max {
        return Err(super::EncodeError::TooLong { length, max });
    }
    let field = u16::try_from(length).map_err(|_| super::EncodeError::TooLong { length, max })?;
    let at = start.saturating_add(MARKER_LEN);
    if let Some(slot) = out.get_mut(at..at.saturating_add(2)) {
        slot.copy_from_slice(&field.to_be_bytes());
    }
    Ok(())
}
