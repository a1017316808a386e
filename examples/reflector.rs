//! A route reflector (RFC 4456) in 30 lines: iBGP clients connect from an
//! address range without being listed, and each hears the others' routes.
//!
//! ```sh
//! # AS, router ID, client range [, cluster ID (the router ID) [, listen address ([::]:179)]]
//! cargo run -p podroute-examples --example reflector -- 64512 10.0.0.1 10.0.0.0/16
//! ```
//!
//! Prints each client's session coming up and going down; SIGTERM or
//! Ctrl-C sends every client a Cease and stops.

use std::net::SocketAddr;

use bgp_core::speaker::{ListenConfig, NeighborRange, RouteChange, Speaker, SpeakerConfig};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [asn, router_id, clients, rest @ ..] = args.as_slice() else {
        return Err("usage: reflector AS ROUTER_ID CLIENT_RANGE [CLUSTER_ID [ADDR:PORT]]".into());
    };
    let mut config = SpeakerConfig::new(asn.parse()?, router_id.parse()?);
    config.cluster_id = Some(rest.first().unwrap_or(router_id).parse()?);
    let listen: SocketAddr = rest.get(1).map_or("[::]:179", String::as_str).parse()?;
    config.listen = Some(ListenConfig::new(listen.ip(), listen.port()));
    let mut range = NeighborRange::new(clients.parse()?, config.local_as);
    range.route_reflector_client = true;
    config.dynamic_neighbors.push(range);

    let (speaker, mut events) = Speaker::start(config).await?;
    println!("reflecting for {clients} on {listen}");
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(RouteChange::PeerUp(up)) => println!("up   {}", up.peer),
                Some(RouteChange::PeerDown(down)) => println!("down {} ({:?})", down.peer, down.reason),
                Some(_) => {}
                None => return Ok(()),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    speaker.shutdown("route reflector stopping").await;
    Ok(())
}
