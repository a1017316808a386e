//! One direction of a TCP connection put back in order from captured
//! segments, well enough for captures of a BGP session.
//!
//! It handles segments captured out of order, retransmissions (also ones
//! that overlap what was delivered: the first copy of a byte wins) and
//! sequence numbers wrapping past 2^32. It does not handle bytes the
//! capture missed (dropped by the capturing kernel, or cut by the snap
//! length): a hole stops the stream there, since what follows cannot be
//! framed without guessing where a message starts, and [`Stream::gap`]
//! says where. A connection whose SYN is not in the capture starts at its
//! first captured segment, which may fall inside a message. It does not
//! look at checksums, windows, FIN or RST.

use std::collections::BTreeMap;

/// One direction of one connection.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of the next byte to deliver; `None` before the
    /// first segment.
    next_seq: Option<u32>,
    /// Bytes delivered so far.
    delivered: u64,
    /// Segments that arrived ahead of `next_seq`, by stream offset.
    early: BTreeMap<u64, Vec<u8>>,
}

/// Bytes the capture lacks.
#[derive(Debug, PartialEq, Eq)]
pub struct Gap {
    /// Stream offset of the first missing byte.
    pub at: u64,
    /// How many bytes are missing before the next captured ones.
    pub missing: u64,
    /// Captured bytes held back behind the hole.
    pub held: usize,
}

impl Stream {
    /// Takes a segment; returns the bytes it puts in order (empty when it
    /// is a retransmission or arrived early). A snap length that cut a
    /// payload short leaves a hole after the bytes that were captured.
    pub fn segment(&mut self, seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
        // The SYN takes one sequence number; the data starts after it.
        let seq = if syn { seq.wrapping_add(1) } else { seq };
        let next = *self.next_seq.get_or_insert(seq);
        // Bare ACKs, and the FIN's own sequence number, carry no bytes.
        if payload.is_empty() {
            return Vec::new();
        }
        // Where the segment starts relative to the next byte wanted, in
        // sequence space (RFC 9293 §3.4: comparisons are modulo 2^32).
        let ahead = seq.wrapping_sub(next) as i32;
        let mut out = Vec::new();
        if ahead > 0 {
            let at = self.delivered + ahead as u64;
            let slot = self.early.entry(at).or_default();
            if payload.len() > slot.len() {
                *slot = payload.to_vec();
            }
            return out;
        }
        // At or behind: skip what was delivered already.
        let behind = ahead.unsigned_abs() as usize;
        if let Some(new) = payload.get(behind..) {
            out.extend_from_slice(new);
        }
        self.advance(&mut out);
        out
    }

    /// Moves `out` (just delivered) past `next_seq`, then delivers every
    /// early segment the new position reaches.
    fn advance(&mut self, out: &mut Vec<u8>) {
        let mut done = 0;
        loop {
            let fresh = out.len() - done;
            self.delivered += fresh as u64;
            self.next_seq = self.next_seq.map(|s| s.wrapping_add(fresh as u32));
            done = out.len();
            let Some(entry) = self.early.first_entry() else {
                return;
            };
            let at = *entry.key();
            if at > self.delivered {
                return;
            }
            let bytes = entry.remove();
            let skip = (self.delivered - at) as usize;
            if let Some(new) = bytes.get(skip..) {
                out.extend_from_slice(new);
            }
        }
    }

    /// The first hole, if captured bytes wait behind one.
    pub fn gap(&self) -> Option<Gap> {
        let (&at, _) = self.early.first_key_value()?;
        Some(Gap {
            at: self.delivered,
            missing: at - self.delivered,
            held: self.early.values().map(Vec::len).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_segments_pass_through_after_the_syn() {
        let mut s = Stream::default();
        assert!(s.segment(1000, true, b"").is_empty());
        assert_eq!(s.segment(1001, false, b"abc"), b"abc");
        assert_eq!(s.segment(1004, false, b"de"), b"de");
        assert_eq!(s.gap(), None);
    }

    #[test]
    fn early_segments_wait_for_the_hole_to_fill() {
        let mut s = Stream::default();
        s.segment(0, true, b"");
        assert!(s.segment(4, false, b"def").is_empty());
        assert_eq!(
            s.gap(),
            Some(Gap {
                at: 0,
                missing: 3,
                held: 3
            })
        );
        assert_eq!(s.segment(1, false, b"abc"), b"abcdef");
        assert_eq!(s.gap(), None);
    }

    #[test]
    fn retransmissions_and_overlaps_deliver_each_byte_once() {
        let mut s = Stream::default();
        s.segment(0, true, b"");
        assert_eq!(s.segment(1, false, b"abcd"), b"abcd");
        assert!(s.segment(1, false, b"abcd").is_empty());
        assert_eq!(s.segment(3, false, b"cdef"), b"ef");
    }

    #[test]
    fn segments_without_payload_leave_no_hole() {
        let mut s = Stream::default();
        s.segment(0, true, b"");
        assert_eq!(s.segment(1, false, b"ab"), b"ab");
        // The ACK after our FIN is one past the last byte.
        assert!(s.segment(4, false, b"").is_empty());
        assert_eq!(s.gap(), None);
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut s = Stream::default();
        s.segment(u32::MAX - 2, true, b"");
        assert_eq!(s.segment(u32::MAX - 1, false, b"ab"), b"ab");
        assert_eq!(s.segment(0, false, b"cd"), b"cd");
    }

    #[test]
    fn a_stream_without_its_syn_starts_at_the_first_segment() {
        let mut s = Stream::default();
        assert_eq!(s.segment(5000, false, b"xy"), b"xy");
        assert_eq!(s.segment(5002, false, b"z"), b"z");
    }
}
