//! The kernel backend against a kernel that has ipip, interoperating with
//! the userspace backend and the bpf backend (root required).
//!
//! This machine's kernel has no ipip module, so the test boots Debian's
//! stock cloud kernel under TCG qemu with an initramfs built by
//! `vm/build-initramfs.sh` (cached under `target/ipip-vm/`; the first run
//! downloads the one kernel package with `apt-get download`). Its `/init`
//! (`vm/init`) joins two namespaces with a veth pair:
//!
//! ```text
//! ns a: va 10.99.0.1/24, kernel tunl0 10.244.1.1/32 (ipip-tunnel kernel-setup)
//! ns b: vb 10.99.0.2/24, TUN tunl0 10.244.2.1/32   (ipip-tunnel, userspace)
//! routes: <peer tunnel /32> via <peer veth IP> dev tunl0 onlink
//! ns d: vda 10.98.0.2/24 to a's vad 10.98.0.1/24, kernel tunl0 10.244.4.1/32
//! ```
//!
//! and then the kernel tunnel's IPIP filter in a (`ipip-tunnel
//! kernel-filter`, [`ipip::filter`]): IPIP from b and d passes while both
//! are nodes; once d is removed from the node set its pings are dropped
//! and counted (3 packets) while b's pass; a second run adopts the table
//! with its count; removing it lets d through again.
//!
//! and then the bpf backend ([`ipip::bpf`], `ipip-tunnel bpf-setup`, pins on
//! a bpffs `/init` mounts) against kernel tunl0 on this stock kernel:
//!
//! ```text
//! ns p: pod 10.244.5.2/24 ── ns e: pe 10.244.5.1/24, ve 10.97.0.1/24, bpf backend, no tunl0
//!                                  10.244.6.0/24 via 10.97.0.2 dev ve onlink encap bpf xmit …
//! ns f: vf 10.97.0.2/24, kernel tunl0 10.244.6.1/32, 10.244.5.0/24 via 10.97.0.1 dev tunl0 onlink
//! ```
//!
//! pings and 512 KiB of TCP each way (byte-exact), with the programs'
//! counters showing they carried it, then `--remove`;
//!
//! and then the build of `tests/kernel.rs` (which asks the kernel whether
//! it has ipip and asserts what is right for it), so that file is known to
//! pass on a stock kernel as well as on this one;
//!
//! and prints one `VMCHECK PASS name` / `VMCHECK FAIL name: why` line per
//! check on the serial console, which is qemu's stdout.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The whole boot normally takes about 10 s under TCG on two shared cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(150);

/// Every check `vm/init` runs; each must report PASS.
const CHECKS: [&str; 20] = [
    "kernel-setup-adopts-fallback-tunl0",
    "kernel-setup-creates-tunl0",
    "userspace-start",
    "ping-kernel-to-userspace",
    "ping-userspace-to-kernel",
    "tcp-kernel-to-userspace",
    "tcp-userspace-to-kernel",
    "gro-egress-to-kernel",
    "ipip-filter-passes-nodes",
    "ipip-filter-drops-and-counts-non-nodes",
    "ipip-filter-adopted-with-its-counter",
    "ipip-filter-removed",
    "bpf-setup-on-stock-kernel",
    "bpf-to-kernel-tunl0-ping",
    "kernel-tunl0-to-bpf-ping",
    "bpf-tcp-to-kernel-tunl0",
    "bpf-tcp-from-kernel-tunl0",
    "bpf-programs-carried-the-traffic",
    "bpf-removed",
    "kernel-tests-on-a-stock-kernel",
];

/// Bytes each TCP check moves through the userspace end (vm/init's file).
const TCP_BYTES: u64 = 512 * 1024;

/// `target/ipip-vm`, next to the profile directory holding our binary.
fn cache_dir(binary: &Path) -> PathBuf {
    binary
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("ipip-vm"))
        .expect("binary lives in target/<profile>/")
}

/// The build of `tests/kernel.rs` next to this test's own binary (the
/// newest, which must be newer than its source): the VM runs it on the
/// stock kernel.
fn kernel_tests_binary() -> PathBuf {
    let me = std::env::current_exe().expect("current_exe");
    let deps = me.parent().expect("target/<profile>/deps");
    let newest = std::fs::read_dir(deps)
        .expect("read target/<profile>/deps")
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("kernel-") && !name.contains('.')
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel.rs");
    let source_time = std::fs::metadata(&source)
        .and_then(|m| m.modified())
        .expect("tests/kernel.rs");
    match newest {
        Some((built, path)) if built >= source_time => path,
        _ => panic!(
            "no build of tests/kernel.rs newer than its source next to {}: \
             `cargo test -p ipip` builds it (or `cargo test -p ipip --test kernel --no-run`)",
            me.display()
        ),
    }
}

fn build(out: &Path, binary: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("vm/build-initramfs.sh");
    let result = Command::new(&script)
        .arg(out)
        .arg(binary)
        .arg(kernel_tests_binary())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(
        result.status.success(),
        "{} failed ({}); scripts/install-deps.sh installs qemu-system-x86, cpio, \
         busybox-static and ethtool\nstdout: {}\nstderr: {}",
        script.display(),
        result.status,
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}

/// Boots the VM and returns its console output, up to `VMCHECK DONE`.
fn boot(out: &Path) -> String {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "512"])
        .args(["-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(out.join("vmlinuz"))
        .arg("-initrd")
        .arg(out.join("initramfs.cpio.gz"))
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start qemu-system-x86_64 ({e}); scripts/install-deps.sh installs qemu-system-x86"
            )
        });
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut console = String::new();
    let mut done = false;
    while !done {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                done = line.contains("VMCHECK DONE");
                console.push_str(&line);
                console.push('\n');
            }
            // qemu exited (console closed) or the deadline passed.
            Err(_) => break,
        }
    }
    // -no-reboot makes the guest's poweroff end qemu; give it a moment.
    let stop = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait().ok().flatten().is_none() {
        child.kill().ok();
        child.wait().ok();
    }
    assert!(
        done,
        "the VM did not finish its checks within {BOOT_TIMEOUT:?} (or qemu died); console:\n{console}"
    );
    console
}

/// The `VMCHECK <which> counters:` line.
fn counters_line<'a>(console: &'a str, which: &str) -> &'a str {
    let tag = format!("VMCHECK {which} counters:");
    console
        .lines()
        .find(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no {which} counters line; console:\n{console}"))
}

/// The userspace end's counter `name` from the `VMCHECK userspace counters` line.
fn counter(console: &str, name: &str) -> u64 {
    let line = counters_line(console, "userspace");
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} in {line}"))
}

/// The bpf end's counter `name` (`name=value` in `bpf-setup --show`).
fn bpf_counter(console: &str, name: &str) -> u64 {
    let line = counters_line(console, "bpf");
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} in {line}"))
}

#[test]
fn kernel_tunl0_interoperates_with_userspace_tunnel_in_a_vm() {
    common::require_root("the IPIP VM test downloads and boots a kernel, so it");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_ipip-tunnel"));
    let out = cache_dir(&binary);
    build(&out, &binary);
    let console = boot(&out);
    let checks: Vec<&str> = console
        .lines()
        .filter_map(|l| l.find("VMCHECK ").map(|i| &l[i..]))
        .collect();
    println!("{}", checks.join("\n"));
    let failed: Vec<&&str> = checks.iter().filter(|l| l.contains(" FAIL ")).collect();
    assert!(failed.is_empty(), "checks failed in the VM: {failed:#?}");
    for name in CHECKS {
        let pass = format!("VMCHECK PASS {name}");
        assert!(
            checks.iter().any(|l| l.trim_end() == pass),
            "check {name} did not pass; console:\n{console}"
        );
    }
    // The TCP data really went through the userspace end, both ways.
    assert!(counter(&console, "rx_bytes") > TCP_BYTES);
    assert!(counter(&console, "tx_bytes") > TCP_BYTES);
    assert_eq!(counter(&console, "drop_bad_inner"), 0);
    // The bpf end's programs carried its pings and TCP (in GSO
    // super-packets, so packets, not bytes: 6 pings and at least 8
    // super-packets of data and the ACKs of the other direction) and
    // refused nothing from the kernel tunnel.
    assert!(bpf_counter(&console, "encapsulated") > 6);
    assert!(bpf_counter(&console, "decapsulated") > 6);
    for name in [
        "encap_errors",
        "encap_no_node",
        "decap_errors",
        "decap_not_node",
    ] {
        assert_eq!(bpf_counter(&console, name), 0, "{name}");
    }
}
