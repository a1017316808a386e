//! The process metrics every Prometheus client library exports
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...: the
//! names of client_golang's process collector, so dashboards and alerts
//! written for any exporter work), read from `/proc` on each scrape.
//!
//! Every file is parsed with checks: a field that is missing or not a
//! number leaves its metric out of the scrape; nothing here panics.

use std::path::Path;

/// Where the kernel publishes processes.
pub const PROC: &str = "/proc";

/// Clock ticks per second of the times in `/proc/<pid>/stat`. The kernel
/// reports them in USER_HZ, which is 100 on every architecture Linux
/// exports to user space (x86, arm64, ...); prometheus/procfs hard-codes
/// it the same way rather than calling `sysconf(_SC_CLK_TCK)`.
const USER_HZ: f64 = 100.0;

/// What was read of this process; `None` where a file or field could not
/// be read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`None` when unlimited).
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures from `<proc>/self/…` and the boot
    /// time from `<proc>/stat`.
    pub fn read(proc: &Path) -> ProcessStats {
        let me = proc.join("self");
        let text = |path: &Path| std::fs::read_to_string(path).ok();
        let stat = text(&me.join("stat")).and_then(|t| Stat::parse(&t));
        let status = text(&me.join("status"));
        let boot = text(&proc.join("stat")).and_then(|t| boot_time(&t));
        let open_fds = std::fs::read_dir(me.join("fd"))
            .ok()
            .map(|dir| dir.filter(Result::is_ok).count() as u64);
        ProcessStats {
            cpu_seconds: stat
                .as_ref()
                .map(|s| s.utime.saturating_add(s.stime) as f64 / USER_HZ),
            resident_bytes: status.as_deref().and_then(|s| status_bytes(s, "VmRSS")),
            virtual_bytes: status.as_deref().and_then(|s| status_bytes(s, "VmSize")),
            open_fds,
            max_fds: text(&me.join("limits")).and_then(|t| max_open_files(&t)),
            start_time_seconds: match (&stat, boot) {
                (Some(s), Some(boot)) => Some(boot as f64 + s.starttime as f64 / USER_HZ),
                _ => None,
            },
        }
    }
}

/// The fields used of `/proc/<pid>/stat` (proc(5)), in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    /// Field 14: time in user mode.
    utime: u64,
    /// Field 15: time in kernel mode.
    stime: u64,
    /// Field 22: start time after boot.
    starttime: u64,
}

impl Stat {
    /// Parses the one line. The command name (field 2) is in parentheses
    /// and may itself hold spaces and parentheses, so the fields are
    /// counted from the last `)`.
    fn parse(text: &str) -> Option<Stat> {
        let (_, rest) = text.rsplit_once(')')?;
        // `rest` starts with field 3 (the state): field N is at N - 3.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n.checked_sub(3)?)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
        })
    }
}

/// A `Key:   1234 kB` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(text: &str, key: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    let mut words = line.split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => n.checked_mul(1024),
        _ => None,
    }
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of the `Max open files` line of `/proc/<pid>/limits`;
/// `None` when it is `unlimited` or the line is missing.
fn max_open_files(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A line of a real /proc/self/stat (Linux 6.18), with a command name
    // that holds a space and a parenthesis.
    const STAT: &str = "4242 (route agent) x) S 1 4242 4242 0 -1 4194560 2155 0 0 0 \
                        150 37 0 0 20 0 9 0 12345 1130496000 2810 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17414 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        assert_eq!(
            Stat::parse(STAT),
            Some(Stat {
                utime: 150,
                stime: 37,
                starttime: 12345
            })
        );
        assert_eq!(Stat::parse("4242 (cut short) S 1 2 3\n"), None);
        assert_eq!(Stat::parse("no parenthesis at all"), None);
        let bad = STAT.replace(" 150 ", " 1x0 ");
        assert_eq!(Stat::parse(&bad), None);
    }

    #[test]
    fn status_sizes_are_kilobytes_with_checked_multiplication() {
        let status = "Name:\troute-agent\nVmSize:\t  1103968 kB\nVmRSS:\t   11240 kB\n";
        assert_eq!(status_bytes(status, "VmRSS"), Some(11240 * 1024));
        assert_eq!(status_bytes(status, "VmSize"), Some(1103968 * 1024));
        assert_eq!(status_bytes(status, "VmSwap"), None);
        assert_eq!(status_bytes("VmRSS:\t12 MB\n", "VmRSS"), None);
        assert_eq!(status_bytes("VmRSS:\tmany kB\n", "VmRSS"), None);
        let huge = format!("VmRSS:\t{} kB\n", u64::MAX / 2);
        assert_eq!(status_bytes(&huge, "VmRSS"), None, "overflow");
    }

    #[test]
    fn limits_give_the_soft_limit_or_none_when_unlimited() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127563               127563               processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1765000000\n"), Some(1765000000));
        assert_eq!(boot_time("cpu 1 2 3\n"), None);
    }

    #[test]
    fn read_takes_every_figure_from_a_proc_tree() {
        let root = std::env::temp_dir().join(format!("ra-proc-{}", std::process::id()));
        let me = root.join("self");
        std::fs::create_dir_all(me.join("fd")).unwrap();
        for n in ["0", "1", "2"] {
            std::fs::write(me.join("fd").join(n), "").unwrap();
        }
        std::fs::write(me.join("stat"), STAT).unwrap();
        std::fs::write(me.join("status"), "VmSize:\t2000 kB\nVmRSS:\t1000 kB\n").unwrap();
        std::fs::write(
            me.join("limits"),
            "Max open files            4096                 8192                 files\n",
        )
        .unwrap();
        std::fs::write(root.join("stat"), "btime 1700000000\n").unwrap();
        let s = ProcessStats::read(&root);
        let empty = ProcessStats::read(&root.join("missing"));
        std::fs::remove_dir_all(&root).unwrap();
        // (150 + 37) ticks; boot time plus 12,345 ticks.
        let start = s.start_time_seconds.unwrap();
        assert!((start - 1_700_000_123.45).abs() < 1e-3, "{start}");
        assert_eq!(
            s,
            ProcessStats {
                cpu_seconds: Some(1.87),
                resident_bytes: Some(1_024_000),
                virtual_bytes: Some(2_048_000),
                open_fds: Some(3),
                max_fds: Some(4096),
                start_time_seconds: Some(start),
            }
        );
        assert_eq!(empty, ProcessStats::default());
    }

    #[test]
    fn this_process_reads_in_full() {
        let s = ProcessStats::read(Path::new(PROC));
        assert!(s.resident_bytes.is_some_and(|b| b > 0), "{s:?}");
        assert!(s.virtual_bytes >= s.resident_bytes, "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n >= 3), "{s:?}");
        assert!(s.max_fds.is_some(), "{s:?}");
        assert!(s.cpu_seconds.is_some(), "{s:?}");
        // After 2020 and not in the future.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            s.start_time_seconds
                .is_some_and(|t| t > 1.6e9 && t <= now + 1.0),
            "{s:?}"
        );
    }
}
