//! `/healthz` against parts of the agent made to stop for real:
//!
//! - the BGP speaker, wedged the way a stuck agent loop would wedge it: its
//!   bounded route stream is left unread until the speaker blocks on it
//!   (in process, on loopback, no root needed);
//! - the FIB thread of a running `route-agent run`, stopped alone with
//!   ptrace (`PTRACE_SEIZE` + `PTRACE_INTERRUPT` stop one thread; a
//!   SIGSTOP would stop the admin API with it), in a network namespace
//!   this test creates (root).
//!
//! Both run with a liveness timeout of 1 s (`ROUTE_AGENT_HEALTH_TIMEOUT`
//! for the binary) so that they take seconds, not minutes. The rules
//! themselves are unit tests of `admin::live` on a moved clock.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bgp_core::speaker::{LocalRoute, Speaker, SpeakerConfig};
use podroute_tests::{Daemon, Netns, Scratch, require_root, wait_for};
use route_agent::admin::live::Limits;
use route_agent::state::AgentState;
use route_agent::status::{self, HttpResponse};

const AGENT: &str = env!("CARGO_BIN_EXE_route-agent");
const DEADLINE: Duration = Duration::from_secs(20);

/// One request from the test process (kept off the runtime's threads).
async fn get(addr: SocketAddr, path: &'static str) -> HttpResponse {
    tokio::task::spawn_blocking(move || status::request(addr, "GET", path, status::TIMEOUT))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Polls `path` until `done` holds, failing at the deadline with the last
/// answer.
async fn poll(
    addr: SocketAddr,
    path: &'static str,
    what: &str,
    mut done: impl FnMut(&HttpResponse) -> bool,
) -> HttpResponse {
    let start = std::time::Instant::now();
    loop {
        let r = get(addr, path).await;
        if done(&r) {
            return r;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: still {} {:?}",
            r.code,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_wedged_on_its_unread_route_stream_fails_healthz_until_the_stream_is_read() {
    let local = Ipv4Addr::LOCALHOST;
    let (speaker, mut routes) = Speaker::start(SpeakerConfig::new(64512, local))
        .await
        .unwrap();
    let state = Arc::new(AgentState::new(speaker.clone()));
    let probe = tokio::spawn(route_agent::agent::heartbeat::probe_speaker(
        speaker.clone(),
        state.clone(),
    ));
    let listener = route_agent::admin::bind(SocketAddr::from((local, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        timeout: Duration::from_secs(1),
    };
    let server = tokio::spawn(route_agent::admin::serve_with(
        listener,
        state.clone(),
        limits,
    ));
    let r = poll(addr, "/healthz", "the probe's first answer", |r| {
        r.code == 200
    })
    .await;
    assert_eq!(r.text(), "ok\n");

    // Each announcement is one batch on the route stream, which holds
    // 1,024: with nobody reading, the speaker blocks on it and stops
    // answering, as it would behind an agent loop that stopped reading.
    let via = LocalRoute::via(IpAddr::from([192, 0, 2, 5]));
    for i in 0..4096u32 {
        let [_, _, b, c] = i.to_be_bytes();
        let prefix = format!("10.{b}.{c}.0/24").parse().unwrap();
        speaker.announce(prefix, via.clone()).unwrap();
    }
    let r = poll(addr, "/healthz", "the wedged speaker reported", |r| {
        r.code == 503
    })
    .await;
    let text = r.text();
    assert!(text.starts_with("speaker: no answer for "), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    let r = get(addr, "/readyz").await;
    assert_eq!(
        (r.code, r.text().lines().next()),
        (503, Some("speaker: no answer in time"))
    );

    // Reading the stream again unblocks it: the speaker works through
    // the rest and answers the probe.
    let reader = tokio::spawn(async move { while routes.recv_batch().await.is_some() {} });
    let r = poll(addr, "/healthz", "the speaker answering again", |r| {
        r.code == 200
    })
    .await;
    assert_eq!(r.text(), "ok\n");
    for task in [probe, server, reader] {
        task.abort();
    }
}

/// Stops one thread of another process with ptrace and lets it go on
/// drop. Every ptrace request on a tracee must come from the thread that
/// seized it, so a helper thread holds it; if that thread ends for any
/// reason the kernel detaches and resumes the tracee.
mod ptrace {
    use std::io;
    use std::sync::mpsc::{Sender, channel};
    use std::thread::JoinHandle;

    #[allow(unsafe_code)]
    fn seize_and_stop(tid: libc::pid_t) -> io::Result<()> {
        let null = std::ptr::null_mut::<libc::c_void>();
        // SAFETY: PTRACE_SEIZE with no options and PTRACE_INTERRUPT read
        // no memory of ours (addr and data are null).
        if unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, null, null) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, null, null) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a live c_int for waitpid to write.
        if unsafe { libc::waitpid(tid, &mut status, libc::__WALL) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[allow(unsafe_code)]
    fn detach(tid: libc::pid_t) {
        let null = std::ptr::null_mut::<libc::c_void>();
        // SAFETY: PTRACE_DETACH with a null signal reads no memory of ours.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, null, null) };
    }

    /// A thread held stopped.
    pub struct Stopped {
        release: Option<Sender<()>>,
        tracer: Option<JoinHandle<()>>,
    }

    impl Stopped {
        /// Stops thread `tid` (a task id from `/proc/PID/task`).
        pub fn new(tid: libc::pid_t) -> Stopped {
            let (stopped_tx, stopped_rx) = channel();
            let (release, released) = channel::<()>();
            let tracer = std::thread::spawn(move || {
                let result = seize_and_stop(tid);
                let ok = result.is_ok();
                let _ = stopped_tx.send(result);
                if ok {
                    let _ = released.recv();
                    detach(tid);
                }
            });
            match stopped_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("cannot stop thread {tid} with ptrace: {e}"),
                Err(e) => panic!("the ptrace helper thread ended: {e}"),
            }
            Stopped {
                release: Some(release),
                tracer: Some(tracer),
            }
        }
    }

    impl Drop for Stopped {
        fn drop(&mut self) {
            drop(self.release.take());
            if let Some(t) = self.tracer.take() {
                let _ = t.join();
            }
        }
    }
}

/// The task id of `pid`'s thread named `name` (`/proc/PID/task/*/comm`).
fn thread_named(pid: u32, name: &str) -> Option<libc::pid_t> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(Result::ok)
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .and_then(|task| task.file_name().to_str()?.parse().ok())
}

/// `GET path` on the admin API inside `ns` (127.0.0.1:9179 there), with
/// bash's `/dev/tcp`: status code (0 when nothing answers) and body.
fn get_in(ns: &Netns, path: &str) -> (u16, String) {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/9179 && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
    );
    let Ok(out) = Command::new("ip")
        .args(["netns", "exec", ns.name(), "bash", "-c", &script])
        .output()
    else {
        return (0, String::new());
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// One node alone in a namespace: a veth pair for its underlay, no peers,
/// no tunnel.
const LONE_NODE: &str = "\
node: {name: node-hz, address: 10.97.0.1/24}
pools: [{cidr: 10.244.0.0/16, ipip-mode: never}]
blocks: [10.244.1.0/26]
graceful-restart: {enabled: false}
";

#[test]
fn a_stopped_fib_thread_fails_healthz_by_name_and_passes_again_when_it_runs() {
    require_root("the FIB-thread liveness test");
    let ns = Netns::new("hz");
    ns.exec(
        "ip",
        &["link", "add", "hz0", "type", "veth", "peer", "name", "hz1"],
    );
    ns.exec("ip", &["addr", "add", "10.97.0.1/24", "dev", "hz0"]);
    for dev in ["hz0", "hz1"] {
        ns.exec("ip", &["link", "set", dev, "up"]);
    }
    let dir = Scratch::new("hz");
    let config = dir.write("agent.yaml", LONE_NODE);
    let log = dir.join("agent.log");
    let agent = Daemon::spawn(
        Some(&ns),
        "env",
        &[
            "ROUTE_AGENT_HEALTH_TIMEOUT=1",
            AGENT,
            "run",
            "--config",
            config.to_str().unwrap(),
        ],
        &log,
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let blackhole_in = || {
        let out = ns.exec("ip", &["route", "show", "proto", "98"]);
        String::from_utf8_lossy(&out.stdout).contains("blackhole 10.244.1.0/26")
    };
    let up = wait_for(DEADLINE, || {
        (blackhole_in() && get_in(&ns, "/healthz").0 == 200).then_some(())
    });
    assert!(
        up.is_some(),
        "the agent did not come up; log:\n{}",
        log_text()
    );
    let tid = thread_named(agent.pid(), "fib")
        .unwrap_or_else(|| panic!("no thread named fib in {}", agent.pid()));

    let stopped = ptrace::Stopped::new(tid);
    let (code, body) = wait_for(DEADLINE, || {
        let r = get_in(&ns, "/healthz");
        (r.0 == 503).then_some(r)
    })
    .unwrap_or_else(|| panic!("/healthz stayed 200 with the FIB thread stopped"));
    assert_eq!(code, 503);
    assert!(body.starts_with("fib-thread: no progress for "), "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");

    drop(stopped);
    let back = wait_for(DEADLINE, || {
        (get_in(&ns, "/healthz").0 == 200).then_some(())
    });
    assert!(
        back.is_some(),
        "/healthz did not recover: {:?}; log:\n{}",
        get_in(&ns, "/healthz"),
        log_text()
    );
}
