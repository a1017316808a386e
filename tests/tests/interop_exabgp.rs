//! Our speaker (`bgp-speaker`) against ExaBGP 4.2, the usual tool for
//! putting malformed attributes on the wire: RFC 7606 error handling seen
//! from a real peer.
//!
//! ExaBGP runs in the foreground in its own namespace as a [`Daemon`]. Its
//! routes come from an API process that follows a command file, so the test
//! decides when each UPDATE is sent by appending a line to that file.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use podroute_tests::bird::{speaker_state, wait_established, wait_routes, wait_seen};
use podroute_tests::{Daemon, Link, Scratch, SpeakerProc, require_root};
use serde_json::{Value, json};

const SPEAKER: &str = env!("CARGO_BIN_EXE_bgp-speaker");
const WAIT: Duration = Duration::from_secs(20);
const ASN: u32 = 64512;

/// Appends one ExaBGP API command to the file its API process follows.
fn exabgp_command(commands: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(commands)
        .unwrap_or_else(|e| panic!("{}: {e}", commands.display()));
    writeln!(f, "{line}").unwrap_or_else(|e| panic!("{}: {e}", commands.display()));
}

#[test]
fn exabgp_treat_as_withdraw_removes_only_that_route_and_keeps_the_session() {
    require_root("ExaBGP interop test");
    let scratch = Scratch::new("exa8");
    let link = Link::new("exa8", 77, 8);

    // The API process: `tail -f` on the command file. `--pid=$PPID` ends it
    // when ExaBGP dies, so killing ExaBGP on drop leaves nothing behind.
    let commands = scratch.write("commands", "");
    let feeder = scratch.write(
        "feed.sh",
        &format!(
            "#!/bin/sh\nexec tail --pid=$PPID -s 0.1 -n +1 -f {}\n",
            commands.display()
        ),
    );
    let chmod = std::process::Command::new("chmod")
        .arg("755")
        .arg(&feeder)
        .status();
    assert!(
        chmod.is_ok_and(|s| s.success()),
        "chmod {}",
        feeder.display()
    );
    let exa_conf = scratch.write(
        "exabgp.conf",
        &format!(
            "process feed {{
  run {feeder};
  encoder text;
}}
neighbor {ours} {{
  router-id {peer};
  local-address {peer};
  local-as {ASN};
  peer-as {ASN};
  family {{ ipv4 unicast; }}
  api {{ processes [ feed ]; }}
}}
",
            feeder = feeder.display(),
            ours = link.our_v4(),
            peer = link.peer_v4(),
        ),
    );

    // We only listen: ExaBGP connects (it does not listen by default).
    let config = json!({
        "local-as": ASN,
        "router-id": link.our_v4(),
        "listen": {"port": 179},
        "peers": [{"address": link.peer_v4(), "asn": ASN, "passive": true}],
    });
    let conf = scratch.write("speaker.json", &config.to_string());
    let mut sp = SpeakerProc::start(&link.ours, SPEAKER, &conf, &[]);
    let started = sp.wait_event(WAIT, |v| v["event"] == "started");
    assert!(started.is_some(), "speaker did not start: {:?}", sp.seen);

    let conf_arg = exa_conf.to_string_lossy().into_owned();
    let log = scratch.join("exabgp.log");
    // Foreground, no privilege drop (there is no `exabgp` user to drop to),
    // no CLI pipes, log to stdout (the daemon's log file).
    let mut exabgp = Daemon::spawn(
        Some(&link.peer),
        "env",
        &[
            "exabgp_daemon_daemonize=false",
            "exabgp_daemon_drop=false",
            "exabgp_api_cli=false",
            "exabgp_log_destination=stdout",
            "exabgp",
            &conf_arg,
        ],
        &log,
    );
    let exa_log = || std::fs::read_to_string(&log).unwrap_or_default();

    assert!(
        wait_established(&mut sp, &link.peer_v4(), WAIT),
        "no session with ExaBGP: {:?}\n{}",
        sp.seen,
        exa_log()
    );
    let (good, bad) = ("10.77.108.0/24", "10.77.109.0/24");
    exabgp_command(&commands, &format!("announce route {good} next-hop self"));
    exabgp_command(&commands, &format!("announce route {bad} next-hop self"));
    let (ok, routes) = wait_routes(&mut sp, WAIT, |r| {
        r.contains_key(good) && r.contains_key(bad)
    });
    assert!(
        ok,
        "ExaBGP's routes did not arrive: {routes:#?}\n{}",
        exa_log()
    );

    // COMMUNITIES (type 8, optional transitive) of length 5, not a multiple
    // of 4: RFC 7606 §7.8 says treat-as-withdraw. Checked with tshark that
    // ExaBGP sends it as is ("Communities (invalid): 5 bytes").
    exabgp_command(
        &commands,
        &format!("announce route {bad} next-hop self attribute [ 0x08 0xc0 0x0000000100 ]"),
    );
    let withdrawn = wait_seen(&mut sp, WAIT, |v| {
        v["event"] == "withdraw" && v["prefix"] == bad
    });
    assert!(
        withdrawn.is_some(),
        "{bad} with a malformed COMMUNITIES was not withdrawn: {:?}\n{}",
        sp.seen,
        exa_log()
    );
    let routes = sp.routes();
    assert!(!routes.contains_key(bad), "{bad} still there: {routes:#?}");
    assert!(
        routes
            .get(good)
            .is_some_and(|r| r["peer"] == link.peer_v4()),
        "{good} should be untouched: {routes:#?}"
    );
    let others: Vec<&Value> = sp
        .seen
        .iter()
        .filter(|v| v["event"] == "withdraw" && v["prefix"] != bad)
        .collect();
    assert!(others.is_empty(), "other routes were withdrawn: {others:?}");

    // The session still carries UPDATEs: a route announced after the bad
    // one arrives.
    let third = "10.77.110.0/24";
    exabgp_command(&commands, &format!("announce route {third} next-hop self"));
    let (ok, routes) = wait_routes(&mut sp, WAIT, |r| r.contains_key(third));
    assert!(
        ok,
        "{third}, sent after the bad UPDATE, did not arrive: {routes:#?}"
    );

    // The session never went down: no NOTIFICATION, no reconnection.
    assert_eq!(
        speaker_state(&mut sp, &link.peer_v4()).as_deref(),
        Some("Established")
    );
    let up = sp
        .seen
        .iter()
        .position(|v| v["event"] == "peer" && v["state"] == "Established")
        .unwrap_or_default();
    let resets: Vec<&Value> = sp.seen[up..]
        .iter()
        .filter(|v| v["event"] == "peer" && v["state"] != "Established")
        .collect();
    assert!(resets.is_empty(), "the session reset: {resets:?}");
    assert!(exabgp.is_running(), "ExaBGP exited:\n{}", exa_log());
    let text = exa_log().to_lowercase();
    assert!(
        !text.contains("notification") && text.matches("connected to").count() == 1,
        "ExaBGP saw the session reset:\n{text}"
    );
}
