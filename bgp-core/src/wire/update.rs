//! UPDATE (RFC 4271 §4.3) and its RFC 7606 error handling.

use bytes::{BufMut, BytesMut};

use super::attr::{self, AttrDecode, AttrValue, MpNlri, MpReach, MpUnreach, PathAttribute};
use super::context::{DecodeContext, Family, PeerKind};
use super::error::{
    AttrFault, AttrProblem, EncodeError, FaultAction, NlriField, UpdateError, Verdict,
};
use super::iana::{attr as code, attr_flags as flag};
use super::prefix::{self, Prefix};
use super::reader;

/// An UPDATE message.
///
/// Attributes keep their order on the wire (MP_REACH_NLRI and
/// MP_UNREACH_NLRI among them), so a decoded UPDATE re-encodes byte for
/// byte whatever order the sender chose.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Update {
    /// IPv4 prefixes withdrawn in the Withdrawn Routes field.
    pub withdrawn: Vec<Prefix>,
    /// Path attributes, in wire order.
    pub attributes: Vec<PathAttribute>,
    /// IPv4 prefixes announced in the NLRI field.
    pub nlri: Vec<Prefix>,
}

/// A decoded UPDATE and the malformed attributes the session survives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateDecode {
    /// The UPDATE, without the attributes that were discarded or dropped.
    pub update: Update,
    /// Every malformed attribute and what was done about it.
    pub faults: Vec<AttrFault>,
}

impl UpdateDecode {
    /// The RFC 7606 verdict: accepted, attributes discarded, or
    /// treat-as-withdraw.
    pub fn verdict(&self) -> Verdict {
        Verdict::from_faults(&self.faults)
    }

    /// Whether every prefix of this UPDATE must be handled as withdrawn.
    pub fn is_treat_as_withdraw(&self) -> bool {
        self.faults
            .iter()
            .any(|f| f.action == FaultAction::TreatAsWithdraw)
    }
}

/// Seen-attribute bitmap: one bit per type code.
#[derive(Default)]
struct Seen([u64; 4]);

impl Seen {
    /// Marks `c`; returns whether it was already marked.
    fn insert(&mut self, c: u8) -> bool {
        let word = self.0.get_mut(usize::from(c >> 6));
        let bit = 1u64 << (c & 63);
        match word {
            Some(w) => {
                let was = *w & bit != 0;
                *w |= bit;
                was
            }
            None => false,
        }
    }

    fn contains(&self, c: u8) -> bool {
        self.0
            .get(usize::from(c >> 6))
            .is_some_and(|w| w & (1u64 << (c & 63)) != 0)
    }
}

impl Update {
    /// The value of the first attribute with type `attr_code`.
    pub fn attribute(&self, attr_code: u8) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .map(|a| &a.value)
            .find(|v| v.code() == attr_code)
    }

    /// MP_REACH_NLRI, if present.
    pub fn mp_reach(&self) -> Option<&MpReach> {
        self.attributes.iter().find_map(|a| match &a.value {
            AttrValue::MpReach(m) => Some(m),
            _ => None,
        })
    }

    /// MP_UNREACH_NLRI, if present.
    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        self.attributes.iter().find_map(|a| match &a.value {
            AttrValue::MpUnreach(m) => Some(m),
            _ => None,
        })
    }

    /// Every announced prefix: the NLRI field, then MP_REACH_NLRI.
    pub fn announced(&self) -> impl Iterator<Item = &Prefix> {
        let mp = self
            .mp_reach()
            .map(|m| m.nlri.prefixes())
            .unwrap_or_default();
        self.nlri.iter().chain(mp)
    }

    /// Every withdrawn prefix: the Withdrawn Routes field, then
    /// MP_UNREACH_NLRI.
    pub fn withdrawals(&self) -> impl Iterator<Item = &Prefix> {
        let mp = self
            .mp_unreach()
            .map(|m| m.withdrawn.prefixes())
            .unwrap_or_default();
        self.withdrawn.iter().chain(mp)
    }

    /// The family this UPDATE marks End-of-RIB for (RFC 4724 §2): an empty
    /// UPDATE for IPv4 unicast, or one holding only an empty MP_UNREACH_NLRI.
    /// Returns the AFI and SAFI.
    pub fn end_of_rib(&self) -> Option<(u16, u8)> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some((Family::Ipv4Unicast.afi(), Family::Ipv4Unicast.safi())),
            [only] => match &only.value {
                AttrValue::MpUnreach(m) if m.is_empty() => Some((m.afi, m.safi)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The End-of-RIB marker for `family`.
    pub fn end_of_rib_marker(family: Family) -> Update {
        match family {
            Family::Ipv4Unicast => Update::default(),
            Family::Ipv6Unicast => Update {
                attributes: vec![PathAttribute::new(AttrValue::MpUnreach(
                    MpUnreach::end_of_rib(family),
                ))],
                ..Update::default()
            },
        }
    }

    /// Decodes an UPDATE body (everything after the header).
    ///
    /// `Err` means the session must be reset with the error's NOTIFICATION.
    /// Otherwise the faults list says what RFC 7606 did about malformed
    /// attributes; see [`UpdateDecode::verdict`].
    pub fn decode(body: &[u8], ctx: &DecodeContext) -> Result<UpdateDecode, UpdateError> {
        // RFC 4271 §6.3: lengths that overrun the message are a Malformed
        // Attribute List; RFC 7606 §4 relies on them to find the NLRI.
        let (rest, withdrawn_len) = reader::u16(body).map_err(|_| UpdateError::LengthOverrun)?;
        let (withdrawn_bytes, rest) = rest
            .split_at_checked(usize::from(withdrawn_len))
            .ok_or(UpdateError::LengthOverrun)?;
        let (rest, attrs_len) = reader::u16(rest).map_err(|_| UpdateError::LengthOverrun)?;
        let (attr_bytes, nlri_bytes) = rest
            .split_at_checked(usize::from(attrs_len))
            .ok_or(UpdateError::LengthOverrun)?;

        let add_path = ctx.add_path.ipv4_unicast;
        let mut withdrawn = Vec::new();
        prefix::decode_all(
            withdrawn_bytes,
            Family::Ipv4Unicast,
            add_path,
            &mut withdrawn,
        )
        .map_err(|_| UpdateError::InvalidNetworkField {
            field: NlriField::Withdrawn,
        })?;
        let mut nlri = Vec::new();
        prefix::decode_all(nlri_bytes, Family::Ipv4Unicast, add_path, &mut nlri).map_err(|_| {
            UpdateError::InvalidNetworkField {
                field: NlriField::Nlri,
            }
        })?;

        let mut faults = Vec::new();
        let mut seen = Seen::default();
        let attributes = decode_attributes(attr_bytes, ctx, &mut seen, &mut faults)?;
        let update = Update {
            withdrawn,
            attributes,
            nlri,
        };
        check_mandatory(&update, ctx, &seen, &mut faults);
        ignore_unused_next_hop(&update, &mut faults);
        check_first_as(&update, ctx)?;
        Ok(UpdateDecode { update, faults })
    }

    /// Writes the UPDATE body.
    pub(crate) fn encode_body(
        &self,
        ctx: &DecodeContext,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let add_path = ctx.add_path.ipv4_unicast;
        let at = out.len();
        out.put_u16(0);
        prefix::encode_all(&self.withdrawn, Family::Ipv4Unicast, add_path, out)?;
        patch_u16(out, at, "withdrawn routes")?;
        let at = out.len();
        out.put_u16(0);
        for a in &self.attributes {
            a.encode(ctx, out)?;
        }
        patch_u16(out, at, "path attributes")?;
        prefix::encode_all(&self.nlri, Family::Ipv4Unicast, add_path, out)
    }
}

/// Fills the 2-byte length at `at` with the number of bytes written after it.
fn patch_u16(out: &mut BytesMut, at: usize, what: &'static str) -> Result<(), EncodeError> {
    let length = out.len().saturating_sub(at).saturating_sub(2);
    let value = u16::try_from(length).map_err(|_| EncodeError::FieldTooLong { what, length })?;
    if let Some(slot) = out.get_mut(at..at.saturating_add(2)) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

/// Walks the path-attribute section.
fn decode_attributes(
    mut input: &[u8],
    ctx: &DecodeContext,
    seen: &mut Seen,
    faults: &mut Vec<AttrFault>,
) -> Result<Vec<PathAttribute>, UpdateError> {
    let mut attributes = Vec::with_capacity(8);
    while !input.is_empty() {
        let Some((flags, attr_code, value, raw, rest)) = split_attribute(input) else {
            // RFC 7606 §4: an attribute that runs past the section makes the
            // rest of the section unusable; the NLRI are still located by
            // the total length, so the UPDATE is treated as withdraw.
            let attr_code = input.get(1).copied().unwrap_or(0);
            faults.push(AttrFault {
                code: attr_code,
                problem: AttrProblem::SectionOverrun,
                action: FaultAction::TreatAsWithdraw,
            });
            break;
        };
        input = rest;
        if seen.insert(attr_code) {
            // RFC 7606 §3g: MP_REACH/MP_UNREACH twice cannot be resolved;
            // for anything else the first copy wins.
            if matches!(attr_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                return Err(UpdateError::DuplicateMpAttribute { code: attr_code });
            }
            faults.push(AttrFault {
                code: attr_code,
                problem: AttrProblem::Duplicate,
                action: FaultAction::Discard,
            });
            continue;
        }
        match attr::decode(flags, attr_code, value, raw, ctx)? {
            AttrDecode::Keep(a) => attributes.push(a),
            AttrDecode::Drop => {}
            AttrDecode::Fault(problem, action) => faults.push(AttrFault {
                code: attr_code,
                problem,
                action,
            }),
        }
    }
    Ok(attributes)
}

/// Splits one attribute off the front: flags, code, value, the whole
/// attribute, and the rest. `None` if its header or value is cut short.
#[allow(clippy::type_complexity)]
fn split_attribute(input: &[u8]) -> Option<(u8, u8, &[u8], &[u8], &[u8])> {
    let (&[flags, attr_code], after) = input.split_first_chunk::<2>()?;
    let (len, after) = if flags & flag::EXTENDED_LENGTH != 0 {
        let (l, a) = after.split_first_chunk::<2>()?;
        (usize::from(u16::from_be_bytes(*l)), a)
    } else {
        let (&l, a) = after.split_first()?;
        (usize::from(l), a)
    };
    let (value, rest) = after.split_at_checked(len)?;
    let raw_len = input.len().saturating_sub(rest.len());
    let raw = input.get(..raw_len)?;
    Some((flags, attr_code, value, raw, rest))
}

/// RFC 7606 §3d: with prefixes to announce, ORIGIN, AS_PATH, NEXT_HOP (for
/// the NLRI field) and, on iBGP, LOCAL_PREF must be present.
fn check_mandatory(update: &Update, ctx: &DecodeContext, seen: &Seen, faults: &mut Vec<AttrFault>) {
    let mp_nlri = update.mp_reach().is_some_and(|m| match &m.nlri {
        MpNlri::Unicast(p) => !p.is_empty(),
        MpNlri::Other(b) => !b.is_empty(),
    });
    if update.nlri.is_empty() && !mp_nlri {
        return;
    }
    let required = [
        (code::ORIGIN, true),
        (code::AS_PATH, true),
        (code::NEXT_HOP, !update.nlri.is_empty()),
        (code::LOCAL_PREF, ctx.is_ibgp()),
    ];
    for (c, needed) in required {
        if needed && !seen.contains(c) {
            faults.push(AttrFault {
                code: c,
                problem: AttrProblem::Missing,
                action: FaultAction::TreatAsWithdraw,
            });
        }
    }
}

/// RFC 4760 §3: NEXT_HOP in an UPDATE without NLRI-field prefixes (the
/// MP_REACH_NLRI ones carry their own next hop) "SHOULD be ignored". A
/// malformed or martian one therefore is discarded (RFC 7606 §2, attribute
/// discard: it cannot affect any route) instead of withdrawing the
/// MP_REACH_NLRI routes. Runs once per UPDATE over its few faults.
fn ignore_unused_next_hop(update: &Update, faults: &mut [AttrFault]) {
    if !update.nlri.is_empty() {
        return;
    }
    for f in faults.iter_mut().filter(|f| f.code == code::NEXT_HOP) {
        f.action = FaultAction::Discard;
    }
}

/// RFC 4271 §6.3: on eBGP the leftmost AS must be the peer's.
fn check_first_as(update: &Update, ctx: &DecodeContext) -> Result<(), UpdateError> {
    let PeerKind::External {
        peer_as,
        enforce_first_as: true,
    } = ctx.peer
    else {
        return Ok(());
    };
    let Some(AttrValue::AsPath(path)) = update.attribute(code::AS_PATH) else {
        return Ok(());
    };
    let first = path.first_as();
    // A 2-octet session shows a 4-octet peer AS as AS_TRANS (RFC 6793 §4.2.2).
    let expected = if ctx.four_octet_as {
        peer_as
    } else {
        u16::try_from(peer_as).map_or(u32::from(super::iana::AS_TRANS), u32::from)
    };
    if first != Some(expected) {
        return Err(UpdateError::FirstAsMismatch {
            expected: peer_as,
            found: first,
        });
    }
    Ok(())
}
