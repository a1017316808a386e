//! NOTIFICATION (RFC 4271 §4.5) with the RFC 9003 shutdown communication.

use bytes::{BufMut, BytesMut};

use super::iana::notify;

/// Largest shutdown communication in bytes (RFC 9003 §2).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

/// A NOTIFICATION message: error code, subcode and data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code (RFC 4271 §4.5; [`super::iana::notify`]).
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data, whose meaning depends on code and subcode.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with the given fields.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease / Administrative Shutdown carrying `message` as the RFC 9003
    /// shutdown communication, cut at a character boundary to 255 bytes.
    ///
    /// ```
    /// use bgp_core::wire::Notification;
    /// let n = Notification::admin_shutdown("maintenance");
    /// assert_eq!((n.code, n.subcode), (6, 2));
    /// assert_eq!(n.shutdown_communication(), Some("maintenance"));
    /// ```
    pub fn admin_shutdown(message: &str) -> Notification {
        let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION);
        while !message.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        let text = message.get(..end).unwrap_or_default();
        let mut data = Vec::with_capacity(end.saturating_add(1));
        // `end` <= 255 by construction.
        data.push(u8::try_from(end).unwrap_or(u8::MAX));
        data.extend_from_slice(text.as_bytes());
        Notification::new(notify::CEASE, notify::cease::ADMIN_SHUTDOWN, data)
    }

    /// Cease / Maximum Number of Prefixes Reached for `family`, whose
    /// data carries AFI, SAFI and the configured limit (RFC 4486 §4).
    pub fn max_prefixes_reached(family: super::Family, limit: u32) -> Notification {
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&family.afi().to_be_bytes());
        data.push(family.safi());
        data.extend_from_slice(&limit.to_be_bytes());
        Notification::new(notify::CEASE, notify::cease::MAX_PREFIXES, data)
    }

    /// The shutdown communication of a Cease / Administrative Shutdown or
    /// Administrative Reset (RFC 9003 §2), if present and valid UTF-8.
    pub fn shutdown_communication(&self) -> Option<&str> {
        let is_shutdown = self.code == notify::CEASE
            && matches!(
                self.subcode,
                notify::cease::ADMIN_SHUTDOWN | notify::cease::ADMIN_RESET
            );
        if !is_shutdown {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }

    /// Parses a NOTIFICATION body (everything after the header). Every body
    /// of at least 2 bytes is valid.
    pub(crate) fn decode_body(body: &[u8]) -> Option<Notification> {
        let (&code, rest) = body.split_first()?;
        let (&subcode, data) = rest.split_first()?;
        Some(Notification::new(code, subcode, data.to_vec()))
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NOTIFICATION {}/{}", self.code, self.subcode)?;
        if let Some(text) = self.shutdown_communication() {
            write!(f, " \"{text}\"")?;
        } else if !self.data.is_empty() {
            write!(f, " data ")?;
            for b in &self.data {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}
