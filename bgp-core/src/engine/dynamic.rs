//! Dynamic neighbours: sessions accepted from an address range instead of
//! a configured address (BIRD's `neighbor range`, FRR's `bgp listen
//! range`, GoBGP's dynamic neighbours), so a route reflector need not list
//! every client. Each range has a limit on how many it holds at once.

use std::net::IpAddr;

use crate::speaker::{NeighborRange, PeerConfig};

/// Why a connection was not made a dynamic neighbour.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// No range holds the address.
    #[error("not a configured neighbour and in no neighbor range")]
    NoRange,
    /// The range holds as many neighbours as it may.
    #[error("neighbor range {range} is full ({limit} neighbours)")]
    Full {
        range: ipnetwork::IpNetwork,
        limit: u32,
    },
}

/// The configured ranges and how many neighbours each holds.
#[derive(Debug, Default)]
pub(crate) struct Ranges {
    ranges: Vec<(NeighborRange, u32)>,
}

impl Ranges {
    pub(crate) fn new(ranges: Vec<NeighborRange>) -> Ranges {
        Ranges {
            ranges: ranges.into_iter().map(|r| (r, 0)).collect(),
        }
    }

    /// Admits `from` into the most specific range holding it: the range's
    /// index (to release it later) and the neighbour's configuration.
    pub(crate) fn admit(&mut self, from: IpAddr) -> Result<(usize, PeerConfig), Refusal> {
        let (index, (range, used)) = self
            .ranges
            .iter_mut()
            .enumerate()
            .filter(|(_, (r, _))| r.prefix.contains(from))
            .max_by_key(|(_, (r, _))| r.prefix.prefix())
            .ok_or(Refusal::NoRange)?;
        if *used >= range.limit {
            return Err(Refusal::Full {
                range: range.prefix,
                limit: range.limit,
            });
        }
        *used += 1;
        Ok((index, range.peer(from)))
    }

    /// A neighbour admitted into range `index` is gone.
    pub(crate) fn released(&mut self, index: usize) {
        if let Some((_, used)) = self.ranges.get_mut(index) {
            *used = used.saturating_sub(1);
        }
    }
}
