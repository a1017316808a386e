//! `route-agent neighbor [ADDR]` and `route-agent rib [PREFIX]`: a running
//! agent's BGP neighbours and BGP table, read from its admin API
//! (`/api/v1/peers`, `/api/v1/routes`) the way `status` reads
//! `/api/v1/status`.
//!
//! The output follows what operators know: `neighbor` lists sessions like
//! `gobgp neighbor` and shows one in detail like `gobgp neighbor ADDR` /
//! `birdc show protocols all NAME`; `rib` lists the Loc-RIB like `gobgp
//! global rib` and, given an address or prefix, shows the routes that cover
//! it, most specific first, like `birdc show route for ADDR all`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;

use ipnetwork::IpNetwork;

use crate::admin::dto::{BestRouteDoc, PeerDoc};
use crate::status::{AdminArgs, ask, format_uptime, table};

/// `route-agent neighbor` options.
#[derive(Clone, Debug, clap::Args)]
pub struct NeighborArgs {
    /// Show this neighbour in detail (what the session negotiated, its
    /// prefixes, its last error); without it, one line per neighbour.
    pub address: Option<IpAddr>,
    /// The agent to ask and the output form.
    #[command(flatten)]
    pub target: AdminArgs,
}

/// `route-agent rib` options.
#[derive(Clone, Debug, clap::Args)]
pub struct RibArgs {
    /// An address or prefix: show the routes that cover it, most specific
    /// first; without it, the whole table.
    #[arg(value_parser = parse_query)]
    pub prefix: Option<IpNetwork>,
    /// The agent to ask and the output form.
    #[command(flatten)]
    pub target: AdminArgs,
}

/// An address (a host prefix) or a prefix, as `birdc show route for`
/// takes either.
fn parse_query(text: &str) -> Result<IpNetwork, BadQuery> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNetwork::from(addr));
    }
    text.parse::<IpNetwork>().map_err(|source| BadQuery {
        text: text.to_owned(),
        source,
    })
}

/// A `rib` argument that is neither an address nor a prefix.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is neither an address nor a prefix ({source}): try 10.244.1.7 or 10.244.1.0/26")]
pub struct BadQuery {
    /// What was given.
    pub text: String,
    /// Why it is not a prefix.
    pub source: ipnetwork::IpNetworkError,
}

/// What `neighbor` and `rib` were asked for and the agent does not have.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotThere {
    /// No neighbour at that address; `known` are the ones there are.
    #[error("no neighbor {addr}{}", Known(known))]
    Neighbor {
        /// The address asked for.
        addr: IpAddr,
        /// The agent's neighbours.
        known: Vec<IpAddr>,
    },
    /// No route covers the address or prefix.
    #[error("network {0} not in table")]
    Network(IpNetwork),
}

/// `: the agent has no neighbours`, or ` (neighbours: a, b)`.
struct Known<'a>(&'a [IpAddr]);

impl std::fmt::Display for Known<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str(": the agent has no neighbours");
        }
        let known: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, " (neighbours: {})", known.join(", "))
    }
}

/// Runs `route-agent neighbor`: exit 0 when shown, 1 when the agent cannot
/// be reached or has no such neighbour, 2 for an unusable config file.
pub fn neighbor(args: &NeighborArgs) -> ExitCode {
    let address = args.address;
    ask(
        &args.target,
        "neighbor",
        "/api/v1/peers",
        |peers: &Vec<PeerDoc>| match address {
            None => Ok(render_neighbors(peers)),
            Some(addr) => find_neighbor(peers, addr).map(render_neighbor),
        },
    )
}

/// Runs `route-agent rib`: exit 0 when shown, 1 when the agent cannot be
/// reached or no route covers the prefix asked for, 2 for an unusable
/// config file.
pub fn rib(args: &RibArgs) -> ExitCode {
    let query = args.prefix;
    ask(
        &args.target,
        "rib",
        "/api/v1/routes",
        |routes: &Vec<BestRouteDoc>| match query {
            None => Ok(render_rib(routes)),
            Some(q) => {
                let covering = routes_for(routes, q);
                if covering.is_empty() {
                    Err(NotThere::Network(q))
                } else {
                    Ok(render_routes_for(&covering))
                }
            }
        },
    )
}

/// The neighbour at `addr`, or why there is none (naming the ones there
/// are).
pub fn find_neighbor(peers: &[PeerDoc], addr: IpAddr) -> Result<&PeerDoc, NotThere> {
    peers
        .iter()
        .find(|p| p.address == addr)
        .ok_or_else(|| NotThere::Neighbor {
            addr,
            known: peers.iter().map(|p| p.address).collect(),
        })
}

/// One line per neighbour, like `gobgp neighbor`.
pub fn render_neighbors(peers: &[PeerDoc]) -> String {
    if peers.is_empty() {
        return "No neighbours.\n".to_owned();
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.address.to_string(),
                p.asn.to_string(),
                peer_type(p),
                p.state.clone(),
                p.uptime_seconds
                    .map_or_else(|| "never".to_owned(), format_uptime),
                p.prefixes_received.to_string(),
                p.prefixes_accepted.to_string(),
                p.prefixes_advertised.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "PEER",
            "AS",
            "TYPE",
            "STATE",
            "UP/DOWN",
            "RECEIVED",
            "ACCEPTED",
            "ADVERTISED",
        ],
        &rows,
    )
}

/// `iBGP`, `eBGP`, and `, dynamic` for a neighbour accepted from a range.
pub(crate) fn peer_type(p: &PeerDoc) -> String {
    if p.dynamic {
        format!("{}, dynamic", p.peer_type)
    } else {
        p.peer_type.to_string()
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// One neighbour in detail, like `gobgp neighbor ADDR`.
pub fn render_neighbor(p: &PeerDoc) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "BGP neighbor is {}, remote AS {} ({})",
        p.address,
        p.asn,
        peer_type(p)
    );
    let state = match p.uptime_seconds {
        Some(up) => format!("{}, up for {}", p.state, format_uptime(up)),
        None => p.state.clone(),
    };
    let _ = writeln!(out, "  BGP state:          {state}");
    if let Some(n) = &p.negotiated {
        let _ = writeln!(out, "  Remote router ID:   {}", n.router_id);
        let keepalive = n.keepalive.map_or_else(
            || "no keepalives".to_owned(),
            |k| format!("keepalive {k} s"),
        );
        let _ = writeln!(out, "  Hold time:          {} s ({keepalive})", n.hold_time);
        let _ = writeln!(out, "  Families:           {}", list_or_none(&n.families));
        let _ = writeln!(out, "  4-octet AS:         {}", yes_no(n.four_octet_as));
        let _ = writeln!(
            out,
            "  Route refresh:      {} (enhanced: {})",
            yes_no(n.route_refresh),
            yes_no(n.enhanced_route_refresh)
        );
        let _ = writeln!(out, "  Extended messages:  {}", yes_no(n.extended_message));
        let _ = writeln!(
            out,
            "  ADD-PATH:           receive {}; send {}",
            list_or_none(&n.add_path_receive),
            list_or_none(&n.add_path_send)
        );
        match &n.graceful_restart {
            Some(gr) => {
                let families: Vec<String> = gr
                    .families
                    .iter()
                    .map(|(f, kept)| {
                        if *kept {
                            format!("{f} (forwarding preserved)")
                        } else {
                            f.clone()
                        }
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "  Graceful restart:   restart time {} s{}; {}",
                    gr.restart_time,
                    if gr.restarting { ", restarting" } else { "" },
                    list_or_none(&families)
                );
            }
            None => out.push_str("  Graceful restart:   not offered by the peer\n"),
        }
    }
    let _ = writeln!(
        out,
        "  Prefixes:           received {}, accepted {}, advertised {}",
        p.prefixes_received, p.prefixes_accepted, p.prefixes_advertised
    );
    if let Some(e) = &p.last_error {
        let _ = writeln!(out, "  Last error:         {e}");
    }
    if let Some(n) = &p.last_notification {
        let _ = writeln!(out, "  Last notification:  {n}");
    }
    out
}

fn route_row(r: &BestRouteDoc) -> Vec<String> {
    vec![
        format!("{}{}", if r.stale { "(stale) " } else { "" }, r.prefix),
        // Our own blocks have no next hop (BIRD shows them as local too).
        if r.peer.is_none() && r.next_hop.is_unspecified() {
            "-".to_owned()
        } else {
            r.next_hop.to_string()
        },
        r.peer.map_or_else(|| "local".to_owned(), |p| p.to_string()),
        r.as_path.clone(),
        r.origin.clone(),
        r.local_pref.map_or_else(String::new, |v| v.to_string()),
        r.med.map_or_else(String::new, |v| v.to_string()),
    ]
}

const ROUTE_HEADERS: [&str; 7] = [
    "NETWORK",
    "NEXT HOP",
    "FROM",
    "AS PATH",
    "ORIGIN",
    "LOCAL PREF",
    "MED",
];

/// The whole Loc-RIB, one best route per line in prefix order, like `gobgp
/// global rib`.
pub fn render_rib(routes: &[BestRouteDoc]) -> String {
    if routes.is_empty() {
        return "No routes.\n".to_owned();
    }
    let rows: Vec<Vec<String>> = routes.iter().map(route_row).collect();
    let mut out = table(&ROUTE_HEADERS, &rows);
    let _ = writeln!(out, "{} routes", routes.len());
    out
}

/// The routes whose prefix covers `query` (an address as a host prefix, or
/// a prefix), most specific first: the first is the one forwarding uses,
/// as `birdc show route for` picks.
pub fn routes_for(routes: &[BestRouteDoc], query: IpNetwork) -> Vec<&BestRouteDoc> {
    let mut covering: Vec<&BestRouteDoc> =
        routes.iter().filter(|r| covers(r.prefix, query)).collect();
    covering.sort_by_key(|r| std::cmp::Reverse(r.prefix.prefix()));
    covering
}

fn covers(outer: IpNetwork, inner: IpNetwork) -> bool {
    outer.is_ipv4() == inner.is_ipv4()
        && outer.prefix() <= inner.prefix()
        && outer.contains(inner.network())
}

/// The routes [`routes_for`] found, as a table.
pub fn render_routes_for(routes: &[&BestRouteDoc]) -> String {
    let rows: Vec<Vec<String>> = routes.iter().map(|r| route_row(r)).collect();
    table(&ROUTE_HEADERS, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::dto::{GracefulRestartDoc, NegotiatedDoc, PeerType};

    fn route(prefix: &str, next_hop: &str, peer: Option<&str>) -> BestRouteDoc {
        BestRouteDoc {
            prefix: prefix.parse().unwrap(),
            next_hop: next_hop.parse().unwrap(),
            peer: peer.map(|p| p.parse().unwrap()),
            as_path: String::new(),
            local_pref: Some(100),
            med: None,
            origin: "igp".into(),
            stale: false,
        }
    }

    fn table_rows() -> Vec<BestRouteDoc> {
        vec![
            route("10.244.0.0/16", "10.0.0.9", Some("10.0.0.9")),
            route("10.244.1.0/26", "0.0.0.0", None),
            route("10.244.2.0/26", "10.0.0.6", Some("10.0.0.6")),
            route("fd00:244::/64", "fd00::6", Some("fd00::6")),
        ]
    }

    #[test]
    fn an_address_is_looked_up_most_specific_first() {
        let routes = table_rows();
        let got: Vec<String> = routes_for(&routes, parse_query("10.244.2.7").unwrap())
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        assert_eq!(got, ["10.244.2.0/26", "10.244.0.0/16"]);
        let got: Vec<String> = routes_for(&routes, parse_query("10.244.2.0/27").unwrap())
            .iter()
            .map(|r| r.prefix.to_string())
            .collect();
        assert_eq!(got, ["10.244.2.0/26", "10.244.0.0/16"]);
        // A wider prefix than any route is not covered by them.
        assert!(routes_for(&routes, parse_query("10.0.0.0/8").unwrap()).is_empty());
        assert!(routes_for(&routes, parse_query("192.0.2.1").unwrap()).is_empty());
        let v6 = routes_for(&routes, parse_query("fd00:244::1").unwrap());
        assert_eq!(v6.len(), 1);
    }

    #[test]
    fn a_query_that_is_neither_address_nor_prefix_says_what_to_write() {
        let e = parse_query("10.244.2").unwrap_err().to_string();
        assert!(e.contains("neither an address nor a prefix"), "{e}");
        assert!(e.contains("10.244.1.0/26"), "{e}");
    }

    #[test]
    fn the_rib_lists_every_route_with_where_it_came_from() {
        let text = render_rib(&table_rows());
        let row = text
            .lines()
            .find(|l| l.starts_with("| 10.244.1.0/26 "))
            .unwrap();
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(
            &cells[1..8],
            ["10.244.1.0/26", "-", "local", "", "igp", "100", ""]
        );
        assert!(text.ends_with("4 routes\n"), "{text}");
    }

    fn peer(negotiated: Option<NegotiatedDoc>) -> PeerDoc {
        PeerDoc {
            address: "10.0.0.6".parse().unwrap(),
            asn: 64512,
            peer_type: PeerType::Ibgp,
            dynamic: false,
            state: "Established".into(),
            uptime_seconds: Some(61),
            prefixes_received: 2,
            prefixes_accepted: 1,
            prefixes_advertised: 3,
            last_error: None,
            last_notification: Some("NOTIFICATION 6/2 (Cease/Administrative Shutdown)".into()),
            negotiated,
        }
    }

    #[test]
    fn a_neighbor_shows_what_its_session_negotiated() {
        let n = NegotiatedDoc {
            router_id: "10.0.0.6".parse().unwrap(),
            hold_time: 90,
            keepalive: Some(30),
            families: vec!["ipv4-unicast".into()],
            four_octet_as: true,
            extended_message: false,
            add_path_receive: vec![],
            add_path_send: vec![],
            route_refresh: true,
            enhanced_route_refresh: false,
            graceful_restart: Some(GracefulRestartDoc {
                restart_time: 120,
                restarting: false,
                families: [("ipv4-unicast".to_owned(), true)].into_iter().collect(),
            }),
        };
        let text = render_neighbor(&peer(Some(n)));
        for want in [
            "BGP neighbor is 10.0.0.6, remote AS 64512 (iBGP)\n",
            "  BGP state:          Established, up for 1m01s\n",
            "  Remote router ID:   10.0.0.6\n",
            "  Hold time:          90 s (keepalive 30 s)\n",
            "  Families:           ipv4-unicast\n",
            "  Route refresh:      yes (enhanced: no)\n",
            "  ADD-PATH:           receive none; send none\n",
            "  Graceful restart:   restart time 120 s; ipv4-unicast (forwarding preserved)\n",
            "  Prefixes:           received 2, accepted 1, advertised 3\n",
            "  Last notification:  NOTIFICATION 6/2",
        ] {
            assert!(text.contains(want), "no {want:?} in:\n{text}");
        }
    }

    #[test]
    fn an_unknown_neighbor_names_the_known_ones() {
        let peers = [peer(None)];
        let e = find_neighbor(&peers, "10.0.0.9".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no neighbor 10.0.0.9 (neighbours: 10.0.0.6)");
        let text = render_neighbor(&peers[0]);
        assert!(!text.contains("Remote router ID"), "{text}");
        let list = render_neighbors(&peers);
        assert!(
            list.contains("| 10.0.0.6 | 64512 | iBGP | Established | 1m01s "),
            "{list}"
        );
    }
}
