//! A failed tunnel set-up and an exited userspace tunnel are set up again
//! with a backoff, shown in the status; one that can never work stops the
//! agent.

use std::os::unix::process::ExitStatusExt;

use super::*;
use crate::agent::tunnel::{TunnelExit, USAGE_EXIT};

fn exited_at_start(code: i32) -> TunnelError {
    TunnelError::ExitedAtStart {
        device: "tunl0".into(),
        command: "route-agent tunnel --device tunl0".into(),
        status: std::process::ExitStatus::from_raw(code << 8),
    }
}

fn exit(pid: u32) -> TunnelExit {
    TunnelExit {
        device: "tunl0".into(),
        pid,
        status: std::process::ExitStatus::from_raw(libc::SIGKILL),
    }
}

/// The tunnel status among `out`.
fn tunnel_status(out: &[Output]) -> Option<TunnelStatus> {
    statuses(out).into_iter().rev().find_map(|s| match s {
        StatusChange::Tunnel(t) => Some(t.clone()),
        _ => None,
    })
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_failing_set_up_is_retried_after_one_then_two_seconds_and_node_changes_do_not_hurry_it() {
    let (mut c, t0, out) = start(TUNNEL, false);
    assert_eq!(tunnel_setups(&out).len(), 1);
    c.handle_tunnel(t0, Err(exited_at_start(1)));
    let out = drain(&mut c);
    assert!(matches!(
        events(&out)[0],
        Event::TunnelFailed { retry_in, .. } if *retry_in == SEC
    ));
    let status = tunnel_status(&out).unwrap();
    assert_eq!(
        (status.backend, status.wanted, status.failures),
        (TunnelInUse::None, true, 1)
    );
    assert!(
        status
            .note
            .as_deref()
            .is_some_and(|n| n.ends_with("(set up again in 1 s)")),
        "{status:?}"
    );
    // A link change meanwhile (the failed process's device came and
    // went) does not set it up before the retry.
    c.handle_node(t0 + SEC / 2, Ok(node(1500)));
    assert!(tunnel_setups(&drain(&mut c)).is_empty());
    c.handle_timeout(t0 + SEC);
    assert_eq!(tunnel_setups(&drain(&mut c)).len(), 1);
    let t1 = t0 + SEC;
    c.handle_tunnel(t1, Err(exited_at_start(1)));
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(t1 + 2 * SEC));
    c.handle_timeout(t1 + 2 * SEC);
    assert_eq!(tunnel_setups(&drain(&mut c)).len(), 1);
    c.handle_tunnel(t1 + 2 * SEC, Ok((TunnelInUse::Userspace, None)));
    let status = tunnel_status(&drain(&mut c)).unwrap();
    assert_eq!(
        (status.backend, status.note, status.failures),
        (TunnelInUse::Userspace, None, 2)
    );
}

#[test]
fn an_exited_tunnel_process_is_reported_and_set_up_again_and_a_long_run_resets_the_backoff() {
    let (mut c, t0, _) = start(TUNNEL, false);
    c.handle_tunnel(t0, Ok((TunnelInUse::Userspace, None)));
    drain(&mut c);
    let t1 = t0 + 5 * SEC;
    c.handle_tunnel_exited(t1, exit(41));
    let out = drain(&mut c);
    assert!(matches!(
        events(&out)[0],
        Event::TunnelExited { retry_in, .. } if *retry_in == SEC
    ));
    let status = tunnel_status(&out).unwrap();
    assert_eq!(status.backend, TunnelInUse::None);
    assert!(
        status
            .note
            .as_deref()
            .is_some_and(|n| n.contains("(pid 41) exited")),
        "{status:?}"
    );
    c.handle_timeout(t1 + SEC);
    assert_eq!(tunnel_setups(&drain(&mut c)).len(), 1);
    let t2 = t1 + SEC;
    c.handle_tunnel(t2, Ok((TunnelInUse::Userspace, None)));
    // Dies again a second later: twice as long.
    c.handle_tunnel_exited(t2 + SEC, exit(42));
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(t2 + 3 * SEC));
    c.handle_timeout(t2 + 3 * SEC);
    let t3 = t2 + 3 * SEC;
    c.handle_tunnel(t3, Ok((TunnelInUse::Userspace, None)));
    // After a minute up, an exit starts the backoff over.
    c.handle_tunnel_exited(t3 + 61 * SEC, exit(43));
    drain(&mut c);
    // (the periodic resync is due earlier: look at the retry alone)
    assert_eq!(c.timer(Timer::TunnelRetry), Some(t3 + 62 * SEC));
}

#[test]
fn a_tunnel_that_refuses_the_agents_command_line_stops_the_agent_with_the_cause() {
    let (mut c, t0, _) = start(TUNNEL, false);
    c.handle_tunnel(t0, Err(exited_at_start(USAGE_EXIT)));
    let out = drain(&mut c);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Stop(Stop::TunnelUnusable(e)) if e.is_permanent())),
        "{out:?}"
    );
    assert!(tunnel_status(&out).is_some_and(|s| s.note.is_some()));
}

#[test]
fn a_reload_that_turns_ipip_on_sets_the_tunnel_up_and_one_that_turns_it_off_clears_its_status() {
    let (mut c, t0, out) = start(DIRECT, false);
    assert!(tunnel_setups(&out).is_empty(), "no IPIP pool: no tunnel");
    c.handle_reload(t0, Ok(config(&DIRECT.replace("never", "always"))));
    let out = drain(&mut c);
    assert_eq!(tunnel_setups(&out).len(), 1, "{out:?}");
    c.handle_tunnel(t0, Ok((TunnelInUse::Kernel, None)));
    drain(&mut c);
    c.handle_reload(t0, Ok(config(DIRECT)));
    let out = drain(&mut c);
    assert!(tunnel_setups(&out).is_empty(), "{out:?}");
    assert_eq!(tunnel_status(&out), Some(TunnelStatus::default()));
}
