//! ROUTE-REFRESH received (RFC 2918, with RFC 7313's subtypes): a request
//! sends the peer one family of our table again; a BoRR and EoRR from a
//! peer bracket its own re-advertisement, after which what it did not send
//! again is gone.

use super::Engine;
use crate::rib::PeerId;
use crate::wire::iana::refresh_subtype;
use crate::wire::{Family, RouteRefresh};

impl Engine {
    /// A ROUTE-REFRESH from peer `id`.
    pub(super) fn route_refresh(&mut self, id: PeerId, r: &RouteRefresh) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(n) = peer.negotiated.as_ref() else {
            return;
        };
        // RFC 2918 §4 (and RFC 7313 §4 for BoRR and EoRR): a family not
        // negotiated on this session is ignored.
        let Some(family) = Family::from_afi_safi(r.afi, r.safi).filter(|f| n.families.contains(f))
        else {
            tracing::debug!(peer = %peer.address, afi = r.afi, safi = r.safi, subtype = r.subtype, "ROUTE-REFRESH for a family not negotiated: ignored");
            return;
        };
        let enhanced = n.enhanced_route_refresh;
        match r.subtype {
            refresh_subtype::NORMAL => self.hub.refresh(id, family, enhanced),
            // RFC 7313 §4: the peer is about to send the family again;
            // its routes stay usable, marked stale, until its EoRR.
            refresh_subtype::BORR if enhanced => {
                self.rib.mark_stale(id, family, &mut self.changes);
                if !peer.refreshing.contains(&family) {
                    peer.refreshing.push(family);
                }
            }
            // RFC 7313 §4: what was not sent again since the BoRR is gone.
            // An EoRR without a BoRR before it marks nothing.
            refresh_subtype::EORR if enhanced && peer.refreshing.contains(&family) => {
                peer.refreshing.retain(|f| *f != family);
                self.rib.sweep_stale(id, family, &mut self.changes);
            }
            // RFC 7313 §5: any other subtype (and BoRR or EoRR on a session
            // without Enhanced Route Refresh) is ignored.
            subtype => {
                tracing::debug!(peer = %peer.address, subtype, ?family, "ROUTE-REFRESH subtype not expected here: ignored");
            }
        }
    }
}
