//! The kernel backend on this machine's kernel, which has no ipip module
//! (see the environment notes): it must say so, as a typed error naming the
//! userspace fallback. Each test runs in a fresh network namespace of its
//! own (root required); the namespace ends with the test's thread.
//!
//! The backend against a kernel that has ipip is tested in `tests/vm.rs`.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use ipip::kernel::{InfoKind, KernelError, TunnelConfig, ensure_tunnel};

/// Runs `f` on a thread that is alone in a fresh network namespace.
fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    common::require_root("the kernel backend tests create network namespaces and devices and");
    std::thread::spawn(move || {
        ipip::sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        f()
    })
    .join()
    .expect("test thread panicked")
}

const TUNNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

#[test]
fn kernel_without_ipip_reports_no_ipip_support_naming_the_fallback() {
    let result = in_fresh_netns(|| ensure_tunnel(&TunnelConfig::new(TUNNEL_ADDR)));
    match result {
        Err(e @ KernelError::NoIpipSupport { .. }) => {
            let text = e.to_string();
            assert!(text.contains("no IPIP support"), "{text}");
            assert!(text.contains("ipip-tunnel"), "names the fallback: {text}");
            assert!(text.contains("tunl0"), "names the device: {text}");
        }
        other => {
            panic!("expected NoIpipSupport on this kernel (it has no ipip module), got {other:?}")
        }
    }
}

#[test]
fn existing_tun_named_tunl0_is_not_mistaken_for_ipip() {
    let result = in_fresh_netns(|| {
        let _tun = ipip::sys::open_tun("tunl0").expect("create TUN tunl0");
        ensure_tunnel(&TunnelConfig::new(TUNNEL_ADDR))
    });
    match result {
        Err(e @ KernelError::NotIpip { .. }) => {
            let text = e.to_string();
            let KernelError::NotIpip { device, kind } = e else {
                unreachable!()
            };
            assert_eq!(device, "tunl0");
            assert_eq!(kind, Some(InfoKind::Tun));
            assert!(text.contains("is a tun device"), "{text}");
        }
        other => panic!("expected NotIpip for a TUN tunl0, got {other:?}"),
    }
}

#[test]
fn kernel_setup_command_exits_3_with_the_fallback_on_stderr() {
    common::require_root("the kernel backend tests create network namespaces and devices and");
    let out = Command::new("unshare")
        .arg("--net")
        .arg(env!("CARGO_BIN_EXE_ipip-tunnel"))
        .args(["kernel-setup", "--address", "10.244.1.1"])
        .output()
        .expect("run unshare (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(
        stderr.contains("ipip-tunnel --device tunl0 --local NODE_IP"),
        "{stderr}"
    );
}
