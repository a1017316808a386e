//! `route-agent check-config` as an operator runs it: exit 0 with `FILE: ok`
//! and a summary, or exit 2 with `FILE:LINE:COL: what — fix` on stderr.

use std::path::PathBuf;
use std::process::{Command, Output};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/node.yaml");

/// Writes `text` to a file of its own under Cargo's per-test temp dir.
fn write(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check_config");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn check(path: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_route-agent"))
        .arg("check-config")
        .arg(path)
        .env_remove("ROUTE_AGENT_CONFIG")
        .env("NODE_NAME", "from-env")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn example_config_passes_with_summary() {
    let out = check(EXAMPLE.as_ref());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with(&format!("{EXAMPLE}: ok\n")), "{stdout}");
    for part in [
        "node node-a",
        "address 10.0.0.5/24",
        "AS 64512",
        "graceful restart 120 s",
        "route protocol 98",
        "127.0.0.1:9179",
    ] {
        assert!(stdout.contains(part), "{part} missing: {stdout}");
    }
}

#[test]
fn minimal_config_passes_and_takes_node_name_from_env() {
    let path = write(
        "minimal.yaml",
        "node:\n  address: 10.0.0.5/24\npools:\n  - cidr: 10.244.0.0/16\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("node from-env"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn unknown_field_fails_with_file_line_and_exit_2() {
    let path = write(
        "unknown.yaml",
        "node:\n  address: 10.0.0.5/24\npools:\n  - cidr: 10.244.0.0/16\n    ipip: always\n",
    );
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:5:5: ", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown field `ipip`, expected one of `cidr`, `ipip-mode`, `block-size`"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_cidr_fails_with_line_and_value() {
    let path = write(
        "cidr.yaml",
        "node:\n  address: 10.0.0.5/24\npools:\n  - cidr: 10.244.0.0/16\nblocks:\n  - 10.244.1.0/26\n  - 10.244.1.64/66\n",
    );
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:7:5: ", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("`10.244.1.64/66` is not a CIDR"),
        "{stderr}"
    );
}

#[test]
fn semantic_errors_fail_with_file_and_fix_one_per_line() {
    let path = write(
        "semantic.yaml",
        "node:\n  address: 10.0.0.5/24\npools:\n  - cidr: 10.244.0.0/16\n  - cidr: \"fd00:244::/48\"\n    ipip-mode: always\nmesh:\n  peers: [10.0.0.5]\ntunnel:\n  mtu: 40\n",
    );
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    let prefix = format!("{}: ", path.display());
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(&prefix) && l.contains(" — ")),
        "{stderr}"
    );
    assert!(stderr.contains("IPIP carries IPv4 only"), "{stderr}");
    assert!(
        stderr.contains("10.0.0.5 is this node's own address"),
        "{stderr}"
    );
    assert!(stderr.contains("tunnel.mtu 40"), "{stderr}");
}

#[test]
fn missing_file_fails_with_exit_2() {
    let out = check("/nonexistent/node.yaml".as_ref());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("/nonexistent/node.yaml: cannot read"));
}

#[test]
fn warnings_go_to_stderr_and_still_pass() {
    let path = write(
        "warn.yaml",
        "node:\n  address: 10.0.0.5/32\npools:\n  - cidr: 10.244.0.0/16\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("warning: node.address 10.0.0.5/32 is a /32"));
}

#[test]
fn usage_error_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_route-agent"))
        .arg("check-config")
        .env_remove("ROUTE_AGENT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_with_a_node_address_on_no_interface_names_the_file_and_exits_2() {
    // 192.0.2.0/24 (TEST-NET-1) is on no interface of a test machine.
    let path = write(
        "absent.yaml",
        "node: {address: 192.0.2.77/24}\npools: [{cidr: 10.244.0.0/16}]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_route-agent"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}: node address 192.0.2.77/24 is on no interface",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("fix node.address"), "{err}");
}

#[test]
fn an_unknown_log_format_is_refused_with_the_values_that_exist() {
    // `--log-format JSON` once gave text logs without a word.
    for bad in ["JSON", "text", ""] {
        let out = Command::new(env!("CARGO_BIN_EXE_route-agent"))
            .args(["run", "--config", EXAMPLE, "--log-format", bad])
            .env_remove("ROUTE_AGENT_LOG_FORMAT")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("[possible values: human, json]"),
            "{bad}: {err}"
        );
    }
}
