//! ROUTE-REFRESH (RFC 2918) with the RFC 7313 subtypes.

use bytes::{BufMut, BytesMut};

use super::error::RouteRefreshError;
use super::iana::refresh_subtype;
use super::reader;

/// A ROUTE-REFRESH message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// Address family identifier.
    pub afi: u16,
    /// Message subtype (RFC 7313 §3.2): 0 request, 1 BoRR, 2 EoRR; other
    /// values are kept and should be ignored by the receiver.
    pub subtype: u8,
    /// Subsequent address family identifier.
    pub safi: u8,
    /// Bytes after the fixed fields of a subtype-0 message (ORF entries,
    /// RFC 5291), kept as received.
    pub trailing: Vec<u8>,
}

impl RouteRefresh {
    /// A plain refresh request for one family.
    pub fn request(afi: u16, safi: u8) -> RouteRefresh {
        RouteRefresh {
            afi,
            subtype: refresh_subtype::NORMAL,
            safi,
            trailing: Vec::new(),
        }
    }

    /// Parses the body; `message` is the whole message, echoed back in the
    /// RFC 7313 §5 NOTIFICATION.
    pub(crate) fn decode_body(
        body: &[u8],
        message: &[u8],
    ) -> Result<RouteRefresh, RouteRefreshError> {
        let invalid = |subtype| RouteRefreshError::InvalidLength {
            subtype,
            length: message.len(),
            message: message.to_vec(),
        };
        let Ok((rest, (afi, subtype, safi))) = (|i| {
            let (i, afi) = reader::u16(i)?;
            let (i, subtype) = reader::u8(i)?;
            let (i, safi) = reader::u8(i)?;
            Ok::<_, nom::Err<()>>((i, (afi, subtype, safi)))
        })(body) else {
            return Err(invalid(0));
        };
        // RFC 7313 §5: BoRR and EoRR bodies are exactly 4 bytes.
        if matches!(subtype, refresh_subtype::BORR | refresh_subtype::EORR) && !rest.is_empty() {
            return Err(invalid(subtype));
        }
        Ok(RouteRefresh {
            afi,
            subtype,
            safi,
            trailing: rest.to_vec(),
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.afi);
        out.put_u8(self.subtype);
        out.put_u8(self.safi);
        out.put_slice(&self.trailing);
    }
}
