//! What `/proc` says about a process: CPU seconds (utime + stime), memory (VmRSS,
//! VmHWM), the CPUs it may run on; and what the hypervisor took from each CPU (steal).

use std::sync::OnceLock;

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux almost
/// everywhere).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime of `pid` ("self" for this process), in seconds.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' field 0 is the state (field 3 of the man page): utime is 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// A `Vm*` line of `/proc/PID/status`, in KiB.
pub fn status_kib(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Current resident set (VmRSS), KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Peak resident set (VmHWM), KiB.
pub fn hwm_kib(pid: &str) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// The CPUs `pid` may run on (`Cpus_allowed_list`: "0", "0-3", "0,2-3").
pub fn allowed_cpus(pid: &str) -> Option<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    cpu_list(
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?,
    )
}

/// A kernel CPU list ("0", "0-3", "0,2-3") as the CPUs it names.
fn cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// Steal time of `cpus` so far, in seconds: time their virtual CPUs wanted to run
/// and the hypervisor ran something else (the 8th value of `/proc/stat`'s `cpuN`).
pub fn steal_seconds(cpus: &[usize]) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut ticks = 0u64;
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        let Some(cpu) = fields.next().and_then(|name| name.strip_prefix("cpu")) else {
            continue;
        };
        if cpu.parse::<usize>().is_ok_and(|c| cpus.contains(&c)) {
            ticks += fields.nth(7)?.parse::<u64>().ok()?;
        }
    }
    Some(ticks as f64 / clock_ticks())
}

#[cfg(all(test, feature = "selftest"))]
mod tests {
    #[test]
    fn reads_this_process() {
        assert!(super::cpu_seconds("self").is_some());
        assert!(super::rss_kib("self").unwrap_or(0) > 0);
        assert!(super::hwm_kib("self").unwrap_or(0) > 0);
        let cpus = super::allowed_cpus("self").unwrap_or_default();
        assert!(!cpus.is_empty());
        assert!(super::steal_seconds(&cpus).is_some());
    }

    #[test]
    fn reads_cpu_lists() {
        assert_eq!(super::cpu_list("0\n"), Some(vec![0]));
        assert_eq!(super::cpu_list("0,2-4"), Some(vec![0, 2, 3, 4]));
        assert_eq!(super::cpu_list("1-x"), None);
    }
}
