//! The reflector's CPU time and memory, and the summary line.

use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// CPU time and memory of a process, from /proc.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Usage {
    /// Sum of the first field of /proc/PID/task/*/schedstat (ns on a CPU).
    pub(crate) sched_ns: u64,
    /// utime + stime of /proc/PID/stat, in clock ticks (1/100 s).
    pub(crate) ticks: u64,
}

pub(crate) fn usage(pid: &str) -> Option<Usage> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let sched_ns = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime 14 and stime 15 (proc(5)).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Usage { sched_ns, ticks })
}

pub(crate) fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<f64>()
        .ok()?;
    Some(kb / 1024.0)
}

/// The soft limit on open files, from /proc/self/limits.
pub(crate) fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The run's measurements, printed as the summary line.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) phase: &'static str,
    pub(crate) setup_ns: Option<u64>,
    pub(crate) converge_ns: Option<u64>,
    pub(crate) withdraw_ns: Option<u64>,
    pub(crate) cpu_converge: Option<(u64, u64)>,
    pub(crate) cpu_withdraw: Option<(u64, u64)>,
    pub(crate) complete: usize,
}

/// Reads the watched process's usage, if one is watched.
pub(crate) struct Watch(pub(crate) Option<u32>);

impl Watch {
    pub(crate) fn usage(&self) -> Option<Usage> {
        usage(&self.0?.to_string())
    }

    /// CPU used since `before`, as (schedstat ns, stat ticks).
    pub(crate) fn since(&self, before: Option<Usage>) -> Option<(u64, u64)> {
        let (b, a) = (before?, self.usage()?);
        Some((
            a.sched_ns.saturating_sub(b.sched_ns),
            a.ticks.saturating_sub(b.ticks),
        ))
    }

    /// Waits `min`, then until the process used under 5% of a CPU over
    /// 250 ms (at most `limit`). Returns the time waited and whether it
    /// went idle (None: nothing watched).
    pub(crate) async fn settle(&self, min: Duration, limit: Duration) -> (Duration, Option<bool>) {
        let start = Instant::now();
        tokio::time::sleep(min).await;
        if self.0.is_none() {
            return (start.elapsed(), None);
        }
        let window = Duration::from_millis(250);
        loop {
            let before = self.usage();
            tokio::time::sleep(window).await;
            match self.since(before) {
                Some((ns, _)) if ns < window.as_nanos() as u64 / 20 => {
                    return (start.elapsed(), Some(true));
                }
                Some(_) if start.elapsed() < limit => {}
                _ => return (start.elapsed(), Some(false)),
            }
        }
    }
}

pub(crate) fn print_summary(args: &Args, result: &str, r: &Report, counters: &Counters) {
    let time = |v: Option<u64>| v.map_or("-".to_string(), secs);
    let sched = |v: Option<(u64, u64)>| v.map_or("-".to_string(), |(ns, _)| secs(ns));
    let ticks = |v: Option<(u64, u64)>| {
        v.map_or("-".to_string(), |(_, t)| format!("{:.2}", t as f64 / 100.0))
    };
    let rss = args
        .watch_pid
        .and_then(peak_rss_mb)
        .map_or("-".into(), |m| format!("{m:.1}"));
    let own = usage("self").map_or("-".into(), |u| format!("{:.2}", u.ticks as f64 / 100.0));
    eprintln!(
        "rrclients: summary result={result} phase={} clients={} blocks={} complete={} \
         setup_s={} converge_s={} withdraw_s={} reflector_cpu_converge_s={} \
         reflector_cpu_stat_converge_s={} reflector_cpu_withdraw_s={} \
         reflector_cpu_stat_withdraw_s={} reflector_peak_rss_mb={rss} client_cpu_s={own} {} \
         at_ns={}",
        r.phase,
        args.plan.clients,
        args.plan.blocks,
        r.complete,
        time(r.setup_ns),
        time(r.converge_ns),
        time(r.withdraw_ns),
        sched(r.cpu_converge),
        ticks(r.cpu_converge),
        sched(r.cpu_withdraw),
        ticks(r.cpu_withdraw),
        counters.line(),
        unix_ns()
    );
}
