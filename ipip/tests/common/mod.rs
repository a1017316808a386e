//! Shared by the kernel-facing tests: they need root, and say so.

/// Fails the test with a message naming `what` unless it runs as root.
pub fn require_root(what: &str) {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "NOT ROOT: {what} must run as root (CI runs them as root)"
    );
}
