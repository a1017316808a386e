//! A path as the Loc-RIB stores it: 12 bytes. The decision process reads
//! these and the store keeps them; both depend on this module, not on each
//! other.

use super::intern::AttrId;

/// The stale bit in [`StoredPath::peer`].
pub(super) const STALE: u32 = 1 << 31;
/// The index of the local pseudo-peer.
pub(super) const LOCAL_INDEX: u32 = 0;

/// A path as stored: 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StoredPath {
    pub(super) attr: AttrId,
    /// Peer index, with [`STALE`].
    pub(super) peer: u32,
    pub(super) path_id: u32,
}

impl StoredPath {
    pub(super) fn new(attr: AttrId, peer_index: u32, path_id: u32) -> StoredPath {
        StoredPath {
            attr,
            peer: peer_index,
            path_id,
        }
    }

    #[inline]
    pub(super) fn peer_index(&self) -> usize {
        (self.peer & !STALE) as usize
    }

    #[inline]
    pub(super) fn is_stale(&self) -> bool {
        self.peer & STALE != 0
    }

    #[inline]
    pub(super) fn is_local(&self) -> bool {
        self.peer & !STALE == LOCAL_INDEX
    }

    /// Same sender and path id: a new one replaces the old (RFC 7911 §3).
    #[inline]
    pub(super) fn same(&self, other: &StoredPath) -> bool {
        self.peer & !STALE == other.peer & !STALE && self.path_id == other.path_id
    }
}
