//! AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 6793 §3).

use bytes::{BufMut, BytesMut};

use crate::wire::error::{AttrProblem, EncodeError};
use crate::wire::iana::{AS_TRANS, as_path_segment};

/// The kind of one AS_PATH segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentKind {
    /// AS_SET: unordered, counts as one AS in path length.
    Set,
    /// AS_SEQUENCE: ordered.
    Sequence,
    /// AS_CONFED_SEQUENCE (RFC 5065).
    ConfedSequence,
    /// AS_CONFED_SET (RFC 5065).
    ConfedSet,
}

impl SegmentKind {
    fn from_code(code: u8) -> Option<SegmentKind> {
        match code {
            as_path_segment::SET => Some(SegmentKind::Set),
            as_path_segment::SEQUENCE => Some(SegmentKind::Sequence),
            as_path_segment::CONFED_SEQUENCE => Some(SegmentKind::ConfedSequence),
            as_path_segment::CONFED_SET => Some(SegmentKind::ConfedSet),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            SegmentKind::Set => as_path_segment::SET,
            SegmentKind::Sequence => as_path_segment::SEQUENCE,
            SegmentKind::ConfedSequence => as_path_segment::CONFED_SEQUENCE,
            SegmentKind::ConfedSet => as_path_segment::CONFED_SET,
        }
    }
}

/// One AS_PATH segment: its kind and 1 to 255 AS numbers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    /// Set or sequence.
    pub kind: SegmentKind,
    /// The AS numbers, in wire order.
    pub asns: Vec<u32>,
}

/// An AS path: a list of segments. Empty for routes originated inside the AS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsPath {
    /// The segments, leftmost first.
    pub segments: Vec<Segment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: Vec<u32>) -> AsPath {
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![Segment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// The leftmost AS if the path starts with an AS_SEQUENCE: the AS the
    /// route was learned from (RFC 4271 §6.3).
    pub fn first_as(&self) -> Option<u32> {
        let first = self.segments.first()?;
        match first.kind {
            SegmentKind::Sequence => first.asns.first().copied(),
            _ => None,
        }
    }

    /// Path length for the decision process (RFC 4271 §9.1.2.2): an AS_SET
    /// counts as one, confederation segments count zero (RFC 5065 §5.3).
    pub fn len_for_selection(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .fold(0usize, usize::saturating_add)
    }

    /// Whether `asn` appears anywhere in the path (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Parses a path with 2- or 4-octet AS numbers (RFC 7606 §7.2 lists what
    /// makes it malformed).
    pub(crate) fn decode(mut input: &[u8], four_octet: bool) -> Result<AsPath, AttrProblem> {
        let width = if four_octet { 4 } else { 2 };
        let mut segments = Vec::new();
        while !input.is_empty() {
            let (&[kind, count], rest) = input
                .split_first_chunk::<2>()
                .ok_or(AttrProblem::MalformedSegments)?;
            let kind = SegmentKind::from_code(kind).ok_or(AttrProblem::MalformedSegments)?;
            if count == 0 {
                return Err(AttrProblem::MalformedSegments);
            }
            let n = usize::from(count).saturating_mul(width);
            let (body, rest) = rest
                .split_at_checked(n)
                .ok_or(AttrProblem::MalformedSegments)?;
            let asns: Vec<u32> = if four_octet {
                body.chunks_exact(4)
                    .map(|c| <[u8; 4]>::try_from(c).map(u32::from_be_bytes).unwrap_or(0))
                    .collect()
            } else {
                body.chunks_exact(2)
                    .map(|c| {
                        <[u8; 2]>::try_from(c)
                            .map(u16::from_be_bytes)
                            .map_or(0, u32::from)
                    })
                    .collect()
            };
            // RFC 7607: AS 0 must not appear in a path.
            if asns.contains(&0) {
                return Err(AttrProblem::ZeroAs);
            }
            segments.push(Segment { kind, asns });
            input = rest;
        }
        Ok(AsPath { segments })
    }

    /// Writes the path with 2- or 4-octet AS numbers; in 2-octet form a
    /// number above 65535 becomes AS_TRANS (RFC 6793 §4.2.2). Segments longer
    /// than 255 AS numbers are split.
    pub(crate) fn encode(&self, four_octet: bool, out: &mut BytesMut) -> Result<(), EncodeError> {
        for segment in &self.segments {
            for chunk in segment.asns.chunks(usize::from(u8::MAX)) {
                out.put_u8(segment.kind.code());
                // chunks() of at most 255.
                out.put_u8(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
                for &asn in chunk {
                    if four_octet {
                        out.put_u32(asn);
                    } else {
                        out.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
                    }
                }
            }
        }
        Ok(())
    }
}
