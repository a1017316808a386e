//! Embedding the speaker: run it from a JSON config, peer with the
//! configured neighbours, announce prefixes, print what is received.
//!
//! ```sh
//! cat > /tmp/speaker.json <<'JSON'
//! {"local-as": 64512, "router-id": "10.0.0.1", "listen": {"port": 179},
//!  "peers": [{"address": "10.0.0.2", "asn": 64512}]}
//! JSON
//! cargo run -p podroute-examples --example speaker -- /tmp/speaker.json 10.244.1.0/26
//! ```
//!
//! Every route change and peer state change is printed as one JSON line on
//! stdout. Commands are read from stdin, one per line:
//! `announce PREFIX [NEXT_HOP]`, `withdraw PREFIX`, `peers`, `routes`,
//! `shutdown [MESSAGE]`. SIGTERM shuts down with a Cease.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bgp_core::speaker::{LocalRoute, RouteChange, Speaker, SpeakerConfig};
use ipnetwork::IpNetwork;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

fn route(prefix: &str, next_hop: Option<&str>) -> Result<(IpNetwork, LocalRoute), String> {
    let prefix: IpNetwork = prefix
        .parse()
        .map_err(|e| format!("bad prefix {prefix}: {e}"))?;
    let next_hop = match next_hop {
        Some(nh) => Some(
            nh.parse::<IpAddr>()
                .map_err(|e| format!("bad next hop {nh}: {e}"))?,
        ),
        None => None,
    };
    let route = match next_hop {
        Some(nh) => LocalRoute::via(nh),
        None => LocalRoute::default(),
    };
    Ok((prefix, route))
}

fn print_change(c: &RouteChange) {
    let line = match c {
        RouteChange::Best(r) => json!({
            "event": "route", "prefix": r.prefix.to_string(), "next-hop": r.next_hop.to_string(),
            "peer": r.peer.map(|p| p.to_string()), "stale": r.stale,
            "as-path": format!("{:?}", r.attrs.as_path.segments.iter().flat_map(|s| s.asns.clone()).collect::<Vec<_>>()),
            "communities": r.attrs.communities,
        }),
        RouteChange::Withdrawn(p) => json!({"event": "withdraw", "prefix": p.to_string()}),
        RouteChange::EndOfRib { peer, family } => {
            json!({"event": "end-of-rib", "peer": peer.to_string(), "family": format!("{family:?}")})
        }
        RouteChange::PeerUp(up) => json!({
            "event": "peer-up", "address": up.peer.to_string(),
            "families": up.negotiated.families.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
            "hold-time": up.negotiated.hold_time,
        }),
        RouteChange::PeerDown(down) => json!({
            "event": "peer-down", "address": down.peer.to_string(),
            "reason": format!("{:?}", down.reason), "routes-kept": down.routes_kept,
        }),
        // Kinds this example does not know yet.
        other => json!({"event": "other", "debug": format!("{other:?}")}),
    };
    println!("{line}");
}

async fn print_peers(speaker: &Speaker, last: &mut HashMap<IpAddr, String>, always: bool) {
    // Empty once the speaker has stopped.
    for p in speaker.peers().await.unwrap_or_default() {
        let state = p.state.to_string();
        if always || last.get(&p.address) != Some(&state) {
            println!(
                "{}",
                json!({"event": "peer", "address": p.address.to_string(), "state": state,
                       "accepted": p.accepted, "advertised": p.advertised,
                       "last-error": p.last_error})
            );
            last.insert(p.address, state);
        }
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: speaker CONFIG.json [PREFIX[,NEXT_HOP]]...");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2);
    });
    let config: SpeakerConfig = serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!("{path}:{}:{}: {e}", e.line(), e.column());
        std::process::exit(2);
    });
    let (speaker, mut routes) = Speaker::start(config).await.unwrap_or_else(|e| {
        eprintln!("cannot start: {e}");
        std::process::exit(1);
    });
    for a in args {
        let mut parts = a.splitn(2, ',');
        match route(parts.next().unwrap_or_default(), parts.next()) {
            Ok((p, r)) => speaker.announce(p, r).unwrap_or_else(|e| eprintln!("{e}")),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        }
    }
    println!(
        "{}",
        json!({"event": "started", "listen": speaker.listen_addr().map(|a| a.to_string())})
    );

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last = HashMap::new();
    loop {
        tokio::select! {
            c = routes.recv_batch() => match c {
                Some(batch) => batch.iter().for_each(print_change),
                None => return,
            },
            _ = tick.tick() => print_peers(&speaker, &mut last, false).await,
            _ = async { sigterm.as_mut().expect("guarded").recv().await }, if sigterm.is_some() => {
                speaker.shutdown("terminated").await;
                return;
            }
            line = stdin.next_line(), if stdin_open => {
                let Ok(Some(line)) = line else {
                    stdin_open = false;
                    continue;
                };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["announce", prefix, rest @ ..] => match route(prefix, rest.first().copied()) {
                        Ok((p, r)) => speaker.announce(p, r).unwrap_or_else(|e| eprintln!("{e}")),
                        Err(e) => eprintln!("{e}"),
                    },
                    ["withdraw", prefix] => match prefix.parse() {
                        Ok(p) => speaker.withdraw(p).unwrap_or_else(|e| eprintln!("{e}")),
                        Err(e) => eprintln!("bad prefix {prefix}: {e}"),
                    },
                    ["peers"] => print_peers(&speaker, &mut last, true).await,
                    ["routes"] => {
                        for r in speaker.routes().await.unwrap_or_default() {
                            print_change(&RouteChange::Best(r));
                        }
                        println!("{}", json!({"event": "routes-end"}));
                    }
                    ["shutdown", message @ ..] => {
                        speaker.shutdown(&message.join(" ")).await;
                        println!("{}", json!({"event": "stopped"}));
                        return;
                    }
                    [] => {}
                    _ => eprintln!("unknown command: {line}"),
                }
            }
        }
    }
}
