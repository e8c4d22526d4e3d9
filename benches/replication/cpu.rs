//! CPU time (user + system, Linux `/proc/*/stat`) of this process and of the servers it
//! talks to, so that a stage's cost can be told per message in CPU, not only in wall time:
//! what scales with cores is the CPU a message costs, wherever it is spent.

use std::time::Duration;

/// Ticks of `/proc/*/stat` per second (`getconf CLK_TCK`: 100 on Linux for x86 and arm).
const TICKS: u64 = 100;

/// CPU used so far by this process, RabbitMQ (`beam.smp`), Redis (`redis-server`) and
/// PostgreSQL (`postgres`, every backend; a backend that exited meanwhile is not counted) and
/// MariaDB (`mariadbd`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cpu {
    pub(crate) bench: Duration,
    pub(crate) rabbitmq: Duration,
    pub(crate) redis: Duration,
    pub(crate) postgres: Duration,
    pub(crate) mariadb: Duration,
}

impl Cpu {
    pub(crate) fn now() -> Cpu {
        let mut cpu = Cpu {
            bench: stat_cpu("/proc/self/stat").unwrap_or_default(),
            ..Cpu::default()
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return cpu;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let slot = match comm.trim() {
                "beam.smp" => &mut cpu.rabbitmq,
                "redis-server" => &mut cpu.redis,
                "postgres" => &mut cpu.postgres,
                "mariadbd" => &mut cpu.mariadb,
                _ => continue,
            };
            *slot += stat_cpu(&format!("/proc/{pid}/stat")).unwrap_or_default();
        }
        cpu
    }

    /// CPU µs per message between `self` (earlier) and `later`, over `messages`, as
    /// `bench X, rabbitmq Y, redis Z, postgres W µs/msg`.
    pub(crate) fn per_message(&self, later: &Cpu, messages: usize) -> PerMessage {
        let per = |a: Duration, b: Duration| {
            b.saturating_sub(a).as_secs_f64() * 1e6 / messages.max(1) as f64
        };
        PerMessage {
            bench: per(self.bench, later.bench),
            rabbitmq: per(self.rabbitmq, later.rabbitmq),
            redis: per(self.redis, later.redis),
            postgres: per(self.postgres, later.postgres),
            mariadb: per(self.mariadb, later.mariadb),
        }
    }
}

/// CPU µs per message of each process (see [`Cpu::per_message`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PerMessage {
    pub(crate) bench: f64,
    pub(crate) rabbitmq: f64,
    pub(crate) redis: f64,
    pub(crate) postgres: f64,
    pub(crate) mariadb: f64,
}

impl std::fmt::Display for PerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU µs/msg: bench {:.0}, rabbitmq {:.0}, redis {:.0}",
            self.bench, self.rabbitmq, self.redis
        )?;
        if self.postgres >= 0.5 {
            write!(f, ", postgres {:.0}", self.postgres)?;
        }
        if self.mariadb >= 0.5 {
            write!(f, ", mariadb {:.0}", self.mariadb)?;
        }
        Ok(())
    }
}

/// utime + stime of a `/proc/<pid>/stat` file.
fn stat_cpu(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state (3rd field of the file) is fields[0]; utime and stime are the
    // file's 14th and 15th fields.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / TICKS))
}
