//! A scenario's result: its figures, each with its bound and target where one exists, the
//! machine it ran on, printed as a table and written as JSON.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

/// The machine a result was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to the process (`nproc`).
    pub cpus: usize,
    /// Total memory in GiB (`free -g`).
    pub memory_gib: f64,
    /// Available memory in GiB when the scenario started.
    pub available_gib: f64,
    /// The 1-, 5- and 15-minute load averages when the scenario started.
    pub load_start: [f64; 3],
    /// The same when it ended.
    pub load_end: [f64; 3],
    /// The kernel (`uname -r`).
    pub kernel: String,
}

impl Machine {
    /// Reads the machine's figures now; [`Machine::finish`] adds the closing load average.
    pub fn now() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib = |key: &str| {
            meminfo
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let load = load_average();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: round(kib("MemTotal:") / 1024.0 / 1024.0, 1),
            available_gib: round(kib("MemAvailable:") / 1024.0 / 1024.0, 1),
            load_start: load,
            load_end: load,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }

    /// Records the load average at the end of the run.
    pub fn finish(&mut self) {
        self.load_end = load_average();
    }
}

/// The load averages from `/proc/loadavg` (zeros where unavailable).
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// A figure from `/proc/self/status` in MiB (`VmHWM` is the peak resident set, `VmRSS` the
/// current one).
pub fn proc_status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| round(kb / 1024.0, 1))
}

/// CPU time the calling thread has used (from `/proc/thread-self/schedstat`), if known. Unlike
/// wall time it does not grow when other processes take the cores.
pub fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

/// CPU time the process's threads used, and the time they were runnable but waited for a CPU
/// (summed from `/proc/self/task/*/schedstat`). The second shows how much other processes on
/// the shared cores held a scenario back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuUse {
    /// Time on a CPU.
    pub cpu: Duration,
    /// Time runnable but waiting in a run queue.
    pub waited: Duration,
}

impl CpuUse {
    /// The process's figures now (zeros where unavailable).
    pub fn now() -> CpuUse {
        let mut total = CpuUse::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return total;
        };
        for task in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            let mut fields = text
                .split_whitespace()
                .map(|v| v.parse::<u64>().unwrap_or(0));
            total.cpu += Duration::from_nanos(fields.next().unwrap_or(0));
            total.waited += Duration::from_nanos(fields.next().unwrap_or(0));
        }
        total
    }

    /// What was used since `earlier`.
    pub fn since(self, earlier: CpuUse) -> CpuUse {
        CpuUse {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            waited: self.waited.saturating_sub(earlier.waited),
        }
    }
}

/// One figure.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// What was measured.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The rate-limit arithmetic's bound for the same work (the fewest calls, the highest
    /// rate), when one exists.
    pub bound: Option<f64>,
    /// `value / bound`.
    pub ratio: Option<f64>,
    /// The target, in words.
    pub target: Option<String>,
    /// Whether the target was met.
    pub pass: Option<bool>,
}

impl Metric {
    /// A plain figure.
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Metric {
        Metric {
            name: name.into(),
            value,
            unit: unit.into(),
            bound: None,
            ratio: None,
            target: None,
            pass: None,
        }
    }

    /// Adds the bound and the ratio to it.
    pub fn bound(mut self, bound: f64) -> Metric {
        self.bound = Some(bound);
        self.ratio = (bound != 0.0).then(|| round(self.value / bound, 3));
        self
    }

    /// Adds a target: met when `check(value)` holds.
    pub fn target(mut self, target: impl Into<String>, check: impl FnOnce(f64) -> bool) -> Metric {
        self.pass = Some(check(self.value));
        self.target = Some(target.into());
        self
    }
}

/// A scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario (with its variant, e.g. `outbound-100000`): also the JSON file's name.
    pub scenario: String,
    /// The command that produces it.
    pub command: String,
    /// When it finished (RFC 3339, UTC).
    pub finished_at: String,
    /// Wall time of the whole scenario, set-up included.
    pub seconds: f64,
    /// The scenario's parameters.
    pub parameters: Value,
    /// The machine.
    pub machine: Machine,
    /// The figures.
    pub metrics: Vec<Metric>,
    /// What a reader needs to interpret them.
    pub notes: Vec<String>,
}

impl Report {
    /// Starts a report; the clock runs from here.
    pub fn start(
        scenario: impl Into<String>,
        command: impl Into<String>,
        parameters: Value,
    ) -> ReportBuilder {
        ReportBuilder {
            report: Report {
                scenario: scenario.into(),
                command: command.into(),
                finished_at: String::new(),
                seconds: 0.0,
                parameters,
                machine: Machine::now(),
                metrics: Vec::new(),
                notes: Vec::new(),
            },
            started: Instant::now(),
        }
    }

    /// `Some(true)` when every target was met, `Some(false)` when one was missed, `None`
    /// when the scenario has no targets.
    pub fn passed(&self) -> Option<bool> {
        let mut verdicts = self.metrics.iter().filter_map(|m| m.pass).peekable();
        verdicts.peek()?;
        Some(verdicts.all(|p| p))
    }

    /// Prints the table.
    pub fn print(&self) {
        println!();
        println!(
            "hubsync bench {} — {}",
            self.scenario,
            verdict(self.passed())
        );
        println!("  command: {}", self.command);
        let m = &self.machine;
        println!(
            "  machine: {} cores, {:.0} GiB; load average {:.2} at start, {:.2} at end; {:.1} s",
            m.cpus, m.memory_gib, m.load_start[0], m.load_end[0], self.seconds
        );
        println!(
            "  {:<56} {:>12} {:<10} {:>10} {:>7}  {:<24}",
            "metric", "value", "unit", "bound", "ratio", "target"
        );
        for metric in &self.metrics {
            let bound = metric.bound.map(number).unwrap_or_default();
            let ratio = metric.ratio.map(|r| format!("{r:.3}")).unwrap_or_default();
            println!(
                "  {:<56} {:>12} {:<10} {:>10} {:>7}  {:<24} {}",
                metric.name,
                number(metric.value),
                metric.unit,
                bound,
                ratio,
                metric.target.as_deref().unwrap_or(""),
                match metric.pass {
                    Some(true) => "pass",
                    Some(false) => "FAIL",
                    None => "",
                }
            );
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
    }

    /// Writes `<dir>/<scenario>.json`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.scenario));
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// A report being filled in.
#[derive(Debug)]
pub struct ReportBuilder {
    report: Report,
    started: Instant,
}

impl ReportBuilder {
    /// Adds a figure.
    pub fn metric(&mut self, metric: Metric) -> &mut Self {
        self.report.metrics.push(metric);
        self
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) -> &mut Self {
        self.report.notes.push(note.into());
        self
    }

    /// Adds the process's CPU use over a measured phase of `wall` length: CPU seconds, and the
    /// seconds its threads were runnable but waited for a CPU (other processes' share).
    pub fn cpu(&mut self, phase: &str, used: CpuUse, wall: Duration) -> &mut Self {
        let wall = wall.as_secs_f64().max(1e-9);
        self.metric(
            Metric::new(
                format!("{phase}: hubsync CPU time (all threads)"),
                round(used.cpu.as_secs_f64(), 2),
                "s",
            )
            .bound(wall),
        );
        self.metric(
            Metric::new(
                format!("{phase}: runnable but waiting for a CPU"),
                round(used.waited.as_secs_f64(), 2),
                "s",
            )
            .bound(wall),
        );
        self
    }

    /// Time since the report started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Closes the report: wall time, end load average, finish time.
    pub fn finish(mut self) -> Report {
        self.report.seconds = round(self.started.elapsed().as_secs_f64(), 2);
        self.report.machine.finish();
        self.report.finished_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.report
    }
}

/// `PASS`, `FAIL`, or `-` when there is no target.
pub fn verdict(passed: Option<bool>) -> &'static str {
    match passed {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "no targets",
    }
}

/// Rounds to `digits` decimals.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// A number for the table: integers without decimals, others with up to three significant
/// decimals.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// The `p`-th percentile (0–100) of sorted samples, by nearest rank; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Milliseconds, rounded to 0.01.
pub fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 2)
}
