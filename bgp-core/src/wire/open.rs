//! OPEN (RFC 4271 §4.2) with capabilities (RFC 5492) and the RFC 9072
//! extended optional-parameters length.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::capability::Capability;
use super::error::{EncodeError, OpenError, OpenPart};
use super::iana::{self, opt_param};
use super::reader;

/// One optional parameter of an OPEN.
///
/// Capabilities are the only parameter type still in use (RFC 5492); others
/// are rejected with Unsupported Optional Parameter. Grouping is kept:
/// BIRD puts every capability in one parameter, GoBGP one per parameter, and
/// both re-encode byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OptParam {
    /// A Capabilities parameter (type 2) and what it holds.
    Capabilities(Vec<Capability>),
}

/// An OPEN message (the version is always 4: anything else is an error).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Open {
    /// The sender's AS, or AS_TRANS (23456) when it does not fit 16 bits.
    pub my_as: u16,
    /// Proposed hold time in seconds: 0 or at least 3.
    pub hold_time: u16,
    /// The sender's BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Optional parameters, in order.
    pub params: Vec<OptParam>,
    /// Use the RFC 9072 extended encoding even if the parameters would fit
    /// the classic one (set when the peer used it, so it re-encodes alike).
    pub extended_params: bool,
}

/// What an OPEN is checked against once it has been parsed (RFC 4271 §6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCheck {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// The AS the peer must announce, if configured.
    pub expected_peer_as: Option<u32>,
    /// Capabilities the peer must offer. Multiprotocol entries must match
    /// exactly; others by code.
    pub required: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn` with one Capabilities parameter. For a 4-octet
    /// `asn` the 2-octet field carries AS_TRANS (RFC 6793 §4.1); the caller
    /// includes [`Capability::FourOctetAs`].
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Open {
        Open {
            my_as: u16::try_from(asn).unwrap_or(iana::AS_TRANS),
            hold_time,
            bgp_id,
            params: vec![OptParam::Capabilities(capabilities)],
            extended_params: false,
        }
    }

    /// Every capability, across parameters.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.params.iter().flat_map(|p| match p {
            OptParam::Capabilities(caps) => caps.iter(),
        })
    }

    /// The peer's real AS: the 4-octet AS capability if present, else
    /// `my_as` (RFC 6793 §4.1).
    pub fn asn(&self) -> u32 {
        self.capabilities()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Checks the parts of RFC 4271 §6.2 that depend on configuration:
    /// peer AS, BGP identifier collision on iBGP, required capabilities.
    pub fn check(&self, check: &OpenCheck) -> Result<(), OpenError> {
        let asn = self.asn();
        if let Some(expected) = check.expected_peer_as
            && expected != asn
        {
            return Err(OpenError::BadPeerAs {
                expected,
                received: asn,
            });
        }
        // RFC 6286 §2.2: identifiers must differ between iBGP peers.
        if asn == check.local_as && self.bgp_id == check.local_id {
            return Err(OpenError::BadBgpIdentifier { id: self.bgp_id });
        }
        for wanted in &check.required {
            let offered = self.capabilities().any(|c| match wanted {
                Capability::Multiprotocol { .. } => c == wanted,
                _ => c.code() == wanted.code(),
            });
            if !offered {
                let mut data = BytesMut::new();
                // A capability that cannot be encoded cannot be sent back;
                // the error still names it by code.
                let _ = wanted.encode(&mut data);
                return Err(OpenError::UnsupportedCapability {
                    code: wanted.code(),
                    data: data.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// Parses an OPEN body (everything after the header).
    pub(crate) fn decode_body(body: &[u8]) -> Result<Open, OpenError> {
        let fixed = OpenError::Malformed {
            part: OpenPart::FixedFields,
        };
        let (rest, version) = reader::u8(body).map_err(|_| fixed.clone())?;
        if version != iana::BGP_VERSION {
            return Err(OpenError::UnsupportedVersion { version });
        }
        let (rest, (my_as, hold_time, bgp_id, opt_len)) = (|i| {
            let (i, my_as) = reader::u16(i)?;
            let (i, hold) = reader::u16(i)?;
            let (i, id) = reader::ipv4(i)?;
            let (i, opt_len) = reader::u8(i)?;
            Ok::<_, nom::Err<()>>((i, (my_as, hold, id, opt_len)))
        })(rest)
        .map_err(|_| fixed)?;

        let params_err = OpenError::Malformed {
            part: OpenPart::OptionalParameters,
        };
        // RFC 9072 §2: a non-extended length of 255 followed by a parameter
        // type of 255 announces a 2-octet length, and 2-octet parameter
        // lengths after it.
        let extended_params = opt_len == 255 && rest.first() == Some(&opt_param::EXTENDED_LENGTH);
        let (params_bytes, trailing) = if extended_params {
            let (i, _) = reader::u8(rest).map_err(|_| params_err.clone())?;
            let (i, len) = reader::u16(i).map_err(|_| params_err.clone())?;
            split(i, usize::from(len)).ok_or(params_err.clone())?
        } else {
            split(rest, usize::from(opt_len)).ok_or(params_err.clone())?
        };
        if !trailing.is_empty() {
            return Err(params_err);
        }

        let mut params = Vec::new();
        let mut input = params_bytes;
        while !input.is_empty() {
            let (i, param_type) = reader::u8(input).map_err(|_| params_err.clone())?;
            let (i, len) = if extended_params {
                reader::u16(i).map_err(|_| params_err.clone())?
            } else {
                let (i, len) = reader::u8(i).map_err(|_| params_err.clone())?;
                (i, u16::from(len))
            };
            let (value, i) = split(i, usize::from(len)).ok_or(params_err.clone())?;
            input = i;
            if param_type != opt_param::CAPABILITIES {
                return Err(OpenError::UnsupportedOptionalParameter { param_type });
            }
            params.push(OptParam::Capabilities(decode_capabilities(value)?));
        }

        // RFC 4271 §6.2: a hold time of 1 or 2 seconds is refused.
        if matches!(hold_time, 1 | 2) {
            return Err(OpenError::UnacceptableHoldTime { hold_time });
        }
        // RFC 6286 §2.2: the identifier is a non-zero 32-bit value.
        if bgp_id.is_unspecified() {
            return Err(OpenError::BadBgpIdentifier { id: bgp_id });
        }
        Ok(Open {
            my_as,
            hold_time,
            bgp_id,
            params,
            extended_params,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u8(iana::BGP_VERSION);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_u32(u32::from(self.bgp_id));

        let mut values = Vec::with_capacity(self.params.len());
        for param in &self.params {
            let OptParam::Capabilities(caps) = param;
            let mut v = BytesMut::new();
            for cap in caps {
                cap.encode(&mut v)?;
            }
            values.push(v);
        }
        let classic_len: usize = values.iter().map(|v| v.len().saturating_add(2)).sum();
        let extended = self.extended_params
            || classic_len > usize::from(u8::MAX)
            || values.iter().any(|v| v.len() > usize::from(u8::MAX));
        if extended {
            let total: usize = values.iter().map(|v| v.len().saturating_add(3)).sum();
            let total = u16::try_from(total).map_err(|_| EncodeError::FieldTooLong {
                what: "optional parameters",
                length: total,
            })?;
            out.put_u8(255);
            out.put_u8(opt_param::EXTENDED_LENGTH);
            out.put_u16(total);
            for v in &values {
                out.put_u8(opt_param::CAPABILITIES);
                // Each value is shorter than the u16 total checked above.
                out.put_u16(u16::try_from(v.len()).unwrap_or(u16::MAX));
                out.put_slice(v);
            }
        } else {
            // classic_len <= 255 and each value <= 255, checked above.
            out.put_u8(u8::try_from(classic_len).unwrap_or(u8::MAX));
            for v in &values {
                out.put_u8(opt_param::CAPABILITIES);
                out.put_u8(u8::try_from(v.len()).unwrap_or(u8::MAX));
                out.put_slice(v);
            }
        }
        Ok(())
    }
}

/// Splits `n` bytes off the front of `input`.
fn split(input: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    input.split_at_checked(n)
}

/// Parses the capabilities of one Capabilities parameter (RFC 5492 §4).
fn decode_capabilities(mut input: &[u8]) -> Result<Vec<Capability>, OpenError> {
    let err = OpenError::Malformed {
        part: OpenPart::OptionalParameters,
    };
    let mut caps = Vec::new();
    while !input.is_empty() {
        let (i, code) = reader::u8(input).map_err(|_| err.clone())?;
        let (i, len) = reader::u8(i).map_err(|_| err.clone())?;
        let (value, i) = split(i, usize::from(len)).ok_or(err.clone())?;
        caps.push(Capability::decode(code, value)?);
        input = i;
    }
    Ok(caps)
}
