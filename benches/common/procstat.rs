//! CPU time from `/proc`: per process, per process tree (a database server and its backends),
//! and machine-wide, so a benchmark can say what each process kind cost per document.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;

pub fn cpu_secs(pid: u32) -> Option<f64> {
    cpu_secs_path(&format!("/proc/{pid}/stat"))
}

pub fn cpu_secs_path(path: &str) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clk_tck())
}

/// CPU seconds of the threads of process `pid` whose name (`/proc/PID/task/TID/comm`, at
/// most 15 bytes) starts with `prefix`, e.g. the store's committer threads
/// (`poros-store-commit`, shown as `poros-store-com`). Threads that exited are not counted.
pub fn thread_cpu_secs(pid: u32, prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .filter_map(|t| cpu_secs_path(&t.path().join("stat").to_string_lossy()))
        .sum()
}

/// Machine-wide (busy, iowait) CPU seconds since boot, from /proc/stat.
pub fn machine_cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 5 {
        return (0.0, 0.0);
    }
    let total: f64 = f.iter().take(8).sum();
    ((total - f[3] - f[4]) / clk_tck(), f[4] / clk_tck())
}

pub fn clk_tck() -> f64 {
    static T: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone)]
struct Proc {
    ppid: u32,
    comm: String,
    /// utime + stime + cutime + cstime in seconds: its own CPU and that of the children it
    /// has waited for (a database backend that exited is counted in its postmaster).
    cpu_with_reaped: f64,
}

/// A snapshot of every process on the machine, to add up the CPU of process trees (a
/// PostgreSQL server forks a backend per connection; Patroni forks its postgres).
pub struct ProcTable {
    procs: HashMap<u32, Proc>,
}

impl ProcTable {
    /// Read `/proc` now. Processes that exit while it is read are skipped.
    pub fn read() -> ProcTable {
        let mut procs = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (s.find('('), s.rfind(')')) else {
                continue;
            };
            let comm = s[open + 1..close].to_string();
            let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
            let ppid = f.get(1).and_then(|x| x.parse().ok()).unwrap_or(0);
            procs.insert(
                pid,
                Proc {
                    ppid,
                    comm,
                    cpu_with_reaped: (num(11) + num(12) + num(13) + num(14)) / clk_tck(),
                },
            );
        }
        ProcTable { procs }
    }

    /// Processes whose command line contains `needle` (e.g. a database's directory).
    pub fn matching_cmdline(&self, needle: &str) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .procs
            .keys()
            .copied()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| {
                        String::from_utf8_lossy(&b)
                            .replace('\0', " ")
                            .contains(needle)
                    })
                    .unwrap_or(false)
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// `roots` and all their descendants.
    pub fn tree(&self, roots: &[u32]) -> BTreeSet<u32> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (pid, p) in &self.procs {
            children.entry(p.ppid).or_default().push(*pid);
        }
        let mut seen = BTreeSet::new();
        let mut stack: Vec<u32> = roots
            .iter()
            .copied()
            .filter(|p| self.procs.contains_key(p))
            .collect();
        while let Some(p) = stack.pop() {
            if seen.insert(p) {
                stack.extend(children.get(&p).into_iter().flatten().copied());
            }
        }
        seen
    }

    /// CPU seconds of these processes (with the children they reaped), summed by command
    /// name (`postgres`, `patroni`, `etcd`, ...).
    pub fn cpu_by_comm(&self, pids: &BTreeSet<u32>) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        for pid in pids {
            if let Some(p) = self.procs.get(pid) {
                *m.entry(p.comm.clone()).or_insert(0.0) += p.cpu_with_reaped;
            }
        }
        m
    }
}
