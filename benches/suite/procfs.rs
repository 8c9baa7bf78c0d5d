//! CPU time and memory of processes, read from /proc.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux x86-64).
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// (pid, ppid, utime + stime in ticks) from `/proc/PID/stat`.
fn stat(pid: &str) -> Option<(u32, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pid, ppid, utime + stime))
}

/// `root` and all its descendants that are alive now.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Some((pid, ppid, _)) = stat(name) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(kids) = children.get(&tree[i]) {
            tree.extend(kids);
        }
        i += 1;
    }
    tree
}

/// User + system CPU time of `root` and its live descendants, in ticks.
pub fn tree_cpu_ticks(root: u32) -> u64 {
    process_tree(root).iter().filter_map(|pid| stat(&pid.to_string())).map(|(_, _, ticks)| ticks).sum()
}

/// User + system CPU time of this process (all threads), in ticks.
pub fn self_cpu_ticks() -> u64 {
    stat("self").map(|(_, _, t)| t).unwrap_or(0)
}

/// Busy ticks of the whole machine (all CPUs), from `/proc/stat`.
pub fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else { return 0 };
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    total - idle
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].split_whitespace().next()?.parse().ok()
}

/// VmRSS of `root` and its descendants, in KiB.
pub fn tree_rss_kib(root: u32) -> u64 {
    process_tree(root).iter().filter_map(|&pid| status_kib(pid, "VmRSS")).sum()
}

/// One reading of the counters a load run compares before and after.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    pub server: u64,
    pub client: u64,
    pub machine: u64,
}

impl CpuSnapshot {
    pub fn take(server_pid: u32) -> Self {
        Self { server: tree_cpu_ticks(server_pid), client: self_cpu_ticks(), machine: machine_busy_ticks() }
    }
}
