//! The clients' blocks and their UPDATEs, encoded before the first connection.

use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use bgp_core::wire::iana::{afi, safi};
use bgp_core::wire::{
    AsPath, AttrValue, Capability, DecodeContext, Family, Message, Open, Origin, PathAttribute,
    Prefix, Update,
};
use ipnetwork::{IpNetwork, Ipv4Network};

use super::*;

/// Who has which address and which blocks. Route `g` (0 ≤ g < C × B) is the
/// `g`-th /26 from the prefix start and belongs to client `g / B`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) clients: u32,
    pub(crate) blocks: u32,
    pub(crate) first_address: u32,
    pub(crate) prefix_start: u32,
}

impl Plan {
    pub(crate) fn new(
        clients: u32,
        blocks: u32,
        first: Ipv4Addr,
        start: Ipv4Addr,
    ) -> Result<Plan, String> {
        let (first_address, prefix_start) = (u32::from(first), u32::from(start));
        if clients == 0 || blocks == 0 {
            return Err("--clients and --blocks must be at least 1".into());
        }
        if first_address.checked_add(clients).is_none() {
            return Err("--first-address + --clients runs past 255.255.255.255".into());
        }
        if prefix_start % BLOCK_SIZE != 0 {
            return Err(format!(
                "--prefix-start {start} is not a /{BLOCK_LEN} boundary"
            ));
        }
        let routes = u64::from(clients) * u64::from(blocks);
        if u64::from(prefix_start) + routes * u64::from(BLOCK_SIZE) > 1 << 32 {
            return Err(format!(
                "{routes} /{BLOCK_LEN} blocks from {start} run past 255.255.255.255"
            ));
        }
        // One UPDATE per client: 4 bytes per /26 after ~50 bytes of header
        // and attributes must fit 4096 (RFC 4271 §4.1).
        if blocks > 1000 {
            return Err("--blocks must be at most 1000 (one UPDATE per client)".into());
        }
        Ok(Plan {
            clients,
            blocks,
            first_address,
            prefix_start,
        })
    }

    pub(crate) fn routes(&self) -> u32 {
        self.clients * self.blocks
    }

    pub(crate) fn address(&self, client: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first_address + client)
    }

    pub(crate) fn block(&self, route: u32) -> Prefix {
        let addr = Ipv4Addr::from(self.prefix_start + route * BLOCK_SIZE);
        let net = Ipv4Network::new(addr, BLOCK_LEN).expect("a /26 is a valid length");
        Prefix::new(IpNetwork::V4(net))
    }

    /// The route number of `p`, if it is one of ours.
    pub(crate) fn route_of(&self, p: &Prefix) -> Option<u32> {
        let IpNetwork::V4(net) = p.network else {
            return None;
        };
        if net.prefix() != BLOCK_LEN || p.path_id.is_some() {
            return None;
        }
        let offset = u32::from(net.ip()).checked_sub(self.prefix_start)?;
        let route = offset / BLOCK_SIZE;
        (offset % BLOCK_SIZE == 0 && route < self.routes()).then_some(route)
    }

    pub(crate) fn owner(&self, route: u32) -> u32 {
        route / self.blocks
    }
}

pub(crate) fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) fn secs(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e9)
}

/// The messages a client sends, encoded once before any connection.
pub(crate) struct Encoded {
    pub(crate) open: Vec<u8>,
    pub(crate) keepalive: Vec<u8>,
    /// Its UPDATE with all its blocks, then End-of-RIB.
    pub(crate) announce: Vec<u8>,
    /// One UPDATE withdrawing all its blocks.
    pub(crate) withdraw: Vec<u8>,
}

pub(crate) fn encode(plan: &Plan, local_as: u32, client: u32) -> Encoded {
    let ctx = DecodeContext::ibgp();
    let addr = plan.address(client);
    let to_bytes = |m: &Message| {
        m.to_bytes(&ctx)
            .unwrap_or_else(|e| fail(&format!("cannot encode {m:?}: {e}")))
    };
    let blocks: Vec<Prefix> = (client * plan.blocks..(client + 1) * plan.blocks)
        .map(|r| plan.block(r))
        .collect();
    let open = Message::Open(Open::new(
        local_as,
        HOLD_TIME,
        addr,
        vec![
            Capability::Multiprotocol {
                afi: afi::IPV4,
                safi: safi::UNICAST,
            },
            Capability::FourOctetAs(local_as),
        ],
    ));
    let mut announce = to_bytes(&Message::Update(Update {
        withdrawn: Vec::new(),
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::default())),
            PathAttribute::new(AttrValue::NextHop(addr)),
            PathAttribute::new(AttrValue::LocalPref(100)),
        ],
        nlri: blocks.clone(),
    }));
    announce.extend(to_bytes(&Message::Update(Update::end_of_rib_marker(
        Family::Ipv4Unicast,
    ))));
    Encoded {
        open: to_bytes(&open),
        keepalive: to_bytes(&Message::Keepalive),
        announce,
        withdraw: to_bytes(&Message::Update(Update {
            withdrawn: blocks,
            ..Update::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::new(
            3,
            2,
            Ipv4Addr::new(10, 82, 0, 1),
            Ipv4Addr::new(10, 200, 0, 0),
        )
        .unwrap()
    }

    fn update(owner: u32, next_hop: Ipv4Addr) -> Update {
        let p = plan();
        Update {
            withdrawn: Vec::new(),
            attributes: vec![PathAttribute::new(AttrValue::NextHop(next_hop))],
            nlri: (owner * p.blocks..(owner + 1) * p.blocks)
                .map(|r| p.block(r))
                .collect(),
        }
    }

    #[test]
    fn blocks_map_back_to_their_route_and_owner() {
        let p = plan();
        assert_eq!(p.block(0).network.to_string(), "10.200.0.0/26");
        assert_eq!(p.block(5).network.to_string(), "10.200.1.64/26");
        for r in 0..p.routes() {
            assert_eq!(p.route_of(&p.block(r)), Some(r));
        }
        assert_eq!(p.owner(5), 2);
        assert_eq!(p.address(2), Ipv4Addr::new(10, 82, 0, 3));
        let past_end = Ipv4Network::new(Ipv4Addr::new(10, 200, 1, 128), 26).unwrap();
        assert_eq!(p.route_of(&Prefix::new(IpNetwork::V4(past_end))), None);
        let not_a_26 = Ipv4Network::new(Ipv4Addr::new(10, 200, 0, 0), 24).unwrap();
        assert_eq!(p.route_of(&Prefix::new(IpNetwork::V4(not_a_26))), None);
    }

    #[test]
    fn complete_once_every_block_is_held_and_echoes_change_nothing() {
        let p = plan();
        let mut rib = Rib::new(p, 0, 1);
        rib.set_own(true);
        rib.apply(&update(0, p.address(0)), false);
        assert_eq!((rib.held, rib.local.echoed), (2, 2));
        rib.apply(&update(1, p.address(1)), false);
        rib.apply(&update(1, p.address(1)), false);
        assert_eq!((rib.held, rib.local.duplicates), (4, 2));
        assert!(!rib.complete());
        rib.apply(&update(2, p.address(2)), false);
        assert!(rib.complete());
        assert_eq!(rib.withdrawer_held, 2);
    }

    #[test]
    fn a_wrong_next_hop_or_a_withdrawal_removes_the_route() {
        let p = plan();
        let mut rib = Rib::new(p, 0, 1);
        rib.apply(&update(1, p.address(1)), false);
        rib.apply(&update(2, p.address(2)), false);
        assert_eq!(rib.held, 4);
        rib.apply(&update(2, p.address(0)), false);
        assert_eq!((rib.held, rib.local.wrong_next_hop), (2, 2));
        let withdraw = Update {
            withdrawn: update(1, p.address(1)).nlri,
            ..Update::default()
        };
        rib.apply(&withdraw, false);
        assert_eq!((rib.held, rib.withdrawer_held), (0, 0));
        rib.apply(&withdraw, false);
        assert_eq!(rib.local.unheld_withdrawals, 2);
    }

    #[test]
    fn treat_as_withdraw_removes_the_announced_routes() {
        let p = plan();
        let mut rib = Rib::new(p, 0, 1);
        rib.apply(&update(1, p.address(1)), false);
        rib.apply(&update(1, p.address(1)), true);
        assert_eq!((rib.held, rib.local.treated_as_withdraw), (0, 2));
    }
}
