//! Helpers for interop tests against real BGP daemons: a [`Link`](crate::Link) between a
//! peer namespace and ours with IPv4 and IPv6 addresses, a [`Bird`] guard
//! that starts BIRD 2 in a namespace and kills it on every path, `birdc`
//! queries, and small waits on our speaker's event stream.
//!
//! BIRD daemonizes, so it is not a child we can reap: the guard finds it
//! through its pidfile and only ever signals a process whose name is `bird`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{Netns, Scratch, SpeakerProc, run, wait_for};

/// A BIRD 2 daemon in a namespace, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Bird {
    ns: String,
    conf: PathBuf,
    sock: PathBuf,
    pidfile: PathBuf,
    log: PathBuf,
    pid: Option<u32>,
}

impl Bird {
    /// Writes `config` to the scratch directory and starts
    /// `bird -c CONF -s SOCK -P PIDFILE` in `ns`, returning once `birdc`
    /// answers. `config` may log to [`Bird::log_path`].
    pub fn start(ns: &Netns, scratch: &Scratch, config: &str) -> Bird {
        let mut bird = Bird {
            ns: ns.name().to_owned(),
            conf: scratch.write("bird.conf", config),
            sock: scratch.join("bird.ctl"),
            pidfile: scratch.join("bird.pid"),
            log: scratch.join("bird.log"),
            pid: None,
        };
        bird.launch(false);
        bird
    }

    /// Where a config's `log "..." all;` should point.
    pub fn log_path(scratch: &Scratch) -> PathBuf {
        scratch.join("bird.log")
    }

    /// BIRD's log so far (empty if the config does not log to
    /// [`Bird::log_path`]), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts the daemon; `recovery` adds `-R` (graceful restart recovery:
    /// BIRD sets the Restart State bit and waits for its peers' End-of-RIB).
    fn launch(&mut self, recovery: bool) {
        let _ = std::fs::remove_file(&self.pidfile);
        let (conf, sock, pidfile) = (
            self.conf.to_string_lossy().into_owned(),
            self.sock.to_string_lossy().into_owned(),
            self.pidfile.to_string_lossy().into_owned(),
        );
        let mut args = vec![
            "netns", "exec", &self.ns, "bird", "-c", &conf, "-s", &sock, "-P", &pidfile,
        ];
        if recovery {
            args.push("-R");
        }
        run("ip", &args);
        // The pidfile is written after the fork, so the parent's exit does
        // not mean it is there yet.
        self.pid = wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&self.pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        });
        let pid = self
            .pid
            .unwrap_or_else(|| panic!("BIRD wrote no pidfile {pidfile}"));
        let up = wait_for(Duration::from_secs(10), || {
            self.birdc(&["show", "status"])
                .contains("Daemon is up and running")
                .then_some(())
        });
        assert!(up.is_some(), "BIRD (pid {pid}) does not answer on {sock}");
    }

    /// Runs `birdc -s SOCK ARGS...` and returns its stdout and stderr.
    pub fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.sock)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run birdc: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    }

    /// The `BGP state:` of protocol `name` (`Established`, `Active`, ...).
    pub fn bgp_state(&self, name: &str) -> Option<String> {
        let text = self.birdc(&["show", "protocols", "all", name]);
        text.lines()
            .find_map(|l| l.trim().strip_prefix("BGP state:"))
            .map(|s| s.trim().to_owned())
    }

    /// Waits up to `timeout` for protocol `name` to reach `state`.
    pub fn wait_bgp_state(&self, name: &str, state: &str, timeout: Duration) -> bool {
        wait_for(timeout, || {
            (self.bgp_state(name).as_deref() == Some(state)).then_some(())
        })
        .is_some()
    }

    /// What follows `label` on its line in channel `channel`'s part of
    /// `show protocols all NAME`.
    fn channel_field(&self, name: &str, channel: &str, label: &str) -> Option<String> {
        let text = self.birdc(&["show", "protocols", "all", name]);
        let mut current = None;
        for line in text.lines().map(str::trim) {
            if let Some(c) = line.strip_prefix("Channel ") {
                current = Some(c.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix(label)
                && current.as_deref() == Some(channel)
            {
                return Some(rest.to_owned());
            }
        }
        None
    }

    /// The `Routes: N imported, M exported` counters of channel `channel`
    /// (`ipv4` / `ipv6`) of protocol `name`.
    pub fn route_counts(&self, name: &str, channel: &str) -> Option<(u64, u64)> {
        let rest = self.channel_field(name, channel, "Routes:")?;
        let nums: Vec<u64> = rest
            .split(',')
            .filter_map(|part| part.split_whitespace().next()?.parse().ok())
            .collect();
        Some((*nums.first()?, *nums.get(1)?))
    }

    /// The `Import updates: received` counter of channel `channel` of
    /// protocol `name`: every route announcement BIRD got, a repeated one
    /// too.
    pub fn import_updates(&self, name: &str, channel: &str) -> Option<u64> {
        self.channel_field(name, channel, "Import updates:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Waits up to `timeout` for channel `channel` of `name` to have
    /// imported `imported` and exported `exported` routes.
    pub fn wait_counts(
        &self,
        name: &str,
        channel: &str,
        imported: u64,
        exported: u64,
        timeout: Duration,
    ) -> bool {
        wait_for(timeout, || {
            (self.route_counts(name, channel) == Some((imported, exported))).then_some(())
        })
        .is_some()
    }

    /// `show route PREFIX all` when BIRD has a route for exactly `prefix`.
    pub fn route(&self, prefix: &str) -> Option<String> {
        let text = self.birdc(&["show", "route", prefix, "all"]);
        text.lines()
            .any(|l| l.split_whitespace().next() == Some(prefix))
            .then_some(text)
    }

    /// Replaces the config file and applies it (`birdc configure`).
    pub fn reconfigure(&self, config: &str) {
        std::fs::write(&self.conf, config)
            .unwrap_or_else(|e| panic!("{}: {e}", self.conf.display()));
        let out = self.birdc(&["configure"]);
        assert!(
            out.contains("Reconfigured") || out.contains("Reconfiguration in progress"),
            "birdc configure: {out}"
        );
    }

    /// Shuts BIRD down keeping graceful-restart state (`birdc graceful
    /// restart`): its BGP sessions close without a NOTIFICATION, so peers
    /// keep its routes as stale. Returns once the process is gone.
    pub fn graceful_restart(&mut self) {
        let out = self.birdc(&["graceful", "restart"]);
        assert!(out.contains("Graceful restart requested"), "birdc: {out}");
        let pid = self.pid.unwrap_or_else(|| panic!("BIRD is not running"));
        let gone = wait_for(Duration::from_secs(10), || (!is_bird(pid)).then_some(()));
        assert!(
            gone.is_some(),
            "BIRD (pid {pid}) still runs 10 s after graceful restart"
        );
        self.pid = None;
    }

    /// Starts BIRD again after [`Bird::graceful_restart`] with a new config,
    /// in graceful-restart recovery mode (`bird -R`).
    pub fn restart(&mut self, config: &str) {
        assert!(self.pid.is_none(), "BIRD is still running");
        std::fs::write(&self.conf, config)
            .unwrap_or_else(|e| panic!("{}: {e}", self.conf.display()));
        self.launch(true);
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        // A panic inside `launch` can leave BIRD running with `pid` unset.
        let pid = self.pid.or_else(|| {
            std::fs::read_to_string(&self.pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        });
        if let Some(pid) = pid.filter(|&p| is_bird(p)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = wait_for(Duration::from_secs(2), || (!is_bird(pid)).then_some(()));
        }
    }
}

/// Whether `pid` is a live (not zombie) process named `bird`: the pidfile
/// may be stale, and a recycled PID must never be signalled.
fn is_bird(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `PID (comm) STATE ...`; comm may itself hold spaces or parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].split_whitespace().next();
    comm == "bird" && !matches!(state, Some("Z" | "X"))
}

/// Waits for an event from our speaker matching `want`, looking first at
/// the events already seen (another wait or [`SpeakerProc::routes`] may
/// have taken it off the stream).
pub fn wait_seen(
    sp: &mut SpeakerProc,
    timeout: Duration,
    mut want: impl FnMut(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    if let Some(v) = sp.seen.iter().find(|v| want(v)) {
        return Some(v.clone());
    }
    sp.wait_event(timeout, want)
}

/// Waits for our speaker's session with `peer` to be Established.
pub fn wait_established(sp: &mut SpeakerProc, peer: &str, timeout: Duration) -> bool {
    wait_seen(sp, timeout, |v| {
        v["event"] == "peer" && v["address"] == peer && v["state"] == "Established"
    })
    .is_some()
}

/// Our speaker's current state of the session with `peer` (the `peers`
/// command).
pub fn speaker_state(sp: &mut SpeakerProc, peer: &str) -> Option<String> {
    sp.send("peers");
    sp.wait_event(Duration::from_secs(5), |v| {
        v["event"] == "peer" && v["address"] == peer
    })
    .and_then(|v| v["state"].as_str().map(str::to_owned))
}

/// Polls our speaker's best routes (the `routes` command) until `check`
/// accepts them, returning the last table seen either way.
pub fn wait_routes(
    sp: &mut SpeakerProc,
    timeout: Duration,
    mut check: impl FnMut(&std::collections::BTreeMap<String, serde_json::Value>) -> bool,
) -> (bool, std::collections::BTreeMap<String, serde_json::Value>) {
    let mut last = Default::default();
    let ok = wait_for(timeout, || {
        last = sp.routes();
        check(&last).then_some(())
    })
    .is_some();
    (ok, last)
}
