//! Cuts a TCP byte stream into whole BGP messages.

use bytes::{Bytes, BytesMut};

use super::error::HeaderError;
use super::header::{HEADER_LEN, Header};

/// A stream framer: feed it whatever the socket returned, take out whole
/// messages.
///
/// It checks each header as soon as its bytes arrive (marker, then length
/// and type against the session's 4096 / 65535 limit), so a bad stream is
/// rejected before its body is buffered, and the buffer never holds more
/// than one incomplete message plus what the caller last pushed. After an
/// error the framer stays failed: the session is being reset.
///
/// ```
/// use bgp_core::wire::Framer;
///
/// let mut keepalive = vec![0xff; 16];
/// keepalive.extend_from_slice(&[0, 19, 4]);
/// let mut framer = Framer::new(false);
/// framer.push(&keepalive[..7]);
/// assert_eq!(framer.next_message().unwrap(), None);
/// framer.push(&keepalive[7..]);
/// assert_eq!(framer.next_message().unwrap().as_deref(), Some(&keepalive[..]));
/// ```
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    extended_message: bool,
    failed: Option<HeaderError>,
}

impl Framer {
    /// A framer for a session with or without extended messages.
    pub fn new(extended_message: bool) -> Framer {
        Framer {
            buf: BytesMut::new(),
            extended_message,
            failed: None,
        }
    }

    /// Raises or lowers the limit once capabilities are negotiated.
    pub fn set_extended_message(&mut self, extended_message: bool) {
        self.extended_message = extended_message;
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The buffer itself, for reading straight into it
    /// (`AsyncReadExt::read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes buffered and not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes still missing before the next message is complete, if its
    /// header is in; lets a driver bound its reads.
    pub fn missing(&self) -> usize {
        match Header::check(&self.buf, self.extended_message) {
            Ok(Some(h)) => usize::from(h.length()).saturating_sub(self.buf.len()),
            _ => HEADER_LEN.saturating_sub(self.buf.len()),
        }
    }

    /// The next whole message (header included), `Ok(None)` if more bytes
    /// are needed, or the header error that must reset the session.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, HeaderError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match Header::check(&self.buf, self.extended_message) {
            Ok(None) => Ok(None),
            Ok(Some(header)) => {
                let len = usize::from(header.length());
                if self.buf.len() < len {
                    return Ok(None);
                }
                Ok(Some(self.buf.split_to(len).freeze()))
            }
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }
}
