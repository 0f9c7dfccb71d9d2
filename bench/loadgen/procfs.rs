//! Readings from /proc: a process's resident memory and CPU time, and this process's
//! open-file limit.

use std::fs;

/// `USER_HZ`, the unit of utime/stime in /proc/<pid>/stat: 100 on every Linux architecture
/// the bench runs on (`getconf CLK_TCK`).
pub const CLK_TCK: f64 = 100.0;

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Resident set size in KiB (`VmRSS`).
pub fn rss_kib(pid: &str) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Resident anonymous memory in KiB (`RssAnon`): heap and stacks, without the binary's code
/// pages that running new code paths faults in (file-backed, shared, ~1.4 MB for sio-edge's
/// first connects), which `VmRSS` counts.
pub fn anon_kib(pid: &str) -> Option<u64> {
    status_kib(pid, "RssAnon:")
}

/// Peak resident set size in KiB (`VmHWM`).
pub fn hwm_kib(pid: &str) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// User plus system CPU seconds (`utime + stime` of /proc/<pid>/stat).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it start at the state (3).
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / CLK_TCK)
}

/// Seconds a process's threads spent runnable but waiting for a CPU (second field of
/// /proc/<pid>/schedstat): other processes on its core show up here.
pub fn runq_wait_seconds(pid: &str) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let ns: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Jiffies of one core from /proc/stat: user, nice, system, idle, iowait, irq, softirq,
/// steal.
pub fn core_jiffies(core: usize) -> Option<[u64; 8]> {
    let s = fs::read_to_string("/proc/stat").ok()?;
    let name = format!("cpu{core}");
    let line = s
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&name))?;
    let mut out = [0u64; 8];
    for (slot, v) in out.iter_mut().zip(line.split_whitespace().skip(1)) {
        *slot = v.parse().ok()?;
    }
    Some(out)
}

/// Busy, softirq and steal percentages of a core between two readings.
pub fn core_usage(a: [u64; 8], b: [u64; 8]) -> (f64, f64, f64) {
    let d: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| y.saturating_sub(*x) as f64)
        .collect();
    let total: f64 = d.iter().sum();
    if total == 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let idle = d[3] + d[4];
    (
        100.0 * (total - idle) / total,
        100.0 * d[6] / total,
        100.0 * d[7] / total,
    )
}

/// The one core this process may run on, if it is pinned to exactly one.
pub fn own_core() -> Option<usize> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
    line["Cpus_allowed_list:".len()..].trim().parse().ok()
}

/// The system-wide count of SYNs dropped for a full accept queue (`TcpExt:
/// ListenOverflows` in /proc/net/netstat).
pub fn listen_overflows() -> Option<u64> {
    let s = fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = s.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// On-CPU nanoseconds of every thread of a process (first field of each
/// /proc/<pid>/task/<tid>/schedstat): the same time as utime+stime, to the nanosecond
/// instead of the 10 ms tick, so short runs of a cheap load (heartbeats) are measurable.
pub fn cpu_ns(pid: &str) -> Option<u64> {
    let mut total = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let s = fs::read_to_string(entry.path().join("schedstat")).unwrap_or_default();
        total += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// `MemAvailable` of /proc/meminfo in KiB: what can be allocated without swapping.
pub fn mem_available_kib() -> Option<u64> {
    let s = fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line["MemAvailable:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's soft limit on open files.
pub fn nofile_limit() -> Option<u64> {
    nofile_limit_of("self")
}

/// The soft limit on open files of process `pid`.
pub fn nofile_limit_of(pid: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable() {
        assert!(rss_kib("self").unwrap() > 0);
        assert!(hwm_kib("self").unwrap() >= rss_kib("self").unwrap() / 2);
        assert!(cpu_seconds("self").unwrap() >= 0.0);
        assert!(nofile_limit().unwrap() > 0);
        assert!(cpu_ns("self").unwrap() > 0);
        assert!(mem_available_kib().unwrap() > 0);
        assert!(listen_overflows().is_some());
        assert!(runq_wait_seconds("self").is_some());
        let a = core_jiffies(0).unwrap();
        let (busy, _, _) = core_usage(a, a);
        assert_eq!(busy, 0.0);
    }
}
