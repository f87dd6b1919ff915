//! What `/proc` says about a process: CPU seconds (utime + stime) and memory (VmRSS,
//! VmHWM).

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

#[cfg(all(test, feature = "selftest"))]
mod tests {
    #[test]
    fn reads_this_process() {
        assert!(super::cpu_seconds("self").is_some());
        assert!(super::rss_kib("self").unwrap_or(0) > 0);
        assert!(super::hwm_kib("self").unwrap_or(0) > 0);
    }
}
