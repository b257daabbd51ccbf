//! Which process runs a run, so that another process can tell a live run from one whose host
//! stopped (killed, Ctrl-C, a crash, a reboot).
//!
//! A run's row holds the process that created it (or resumed it last) as
//! `<hostname>:<boot id>:<pid>:<start time>`. On the same machine and boot, the process is alive
//! when `/proc/<pid>` exists with the same start time (a pid reused by another process has
//! another start time); a different boot id on the same hostname means the machine restarted
//! since. A process on another machine (a shared PostgreSQL) cannot be checked from here, and
//! neither can anything where `/proc` is missing: those are `Unknown`, never taken for gone.

/// What can be told about a recorded process from this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// Another machine, or no way to look.
    Unknown,
}

/// A process as recorded with its runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProcess {
    hostname: String,
    boot_id: String,
    pid: u32,
    /// Clock ticks after boot at which the process started (`/proc/<pid>/stat`, field 22).
    start_ticks: u64,
}

impl HostProcess {
    /// This process; none where it cannot be told (no `/proc`). Read once.
    pub fn current() -> Option<&'static HostProcess> {
        static CURRENT: std::sync::OnceLock<Option<HostProcess>> = std::sync::OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = std::process::id();
                Some(HostProcess {
                    hostname: read_trimmed("/proc/sys/kernel/hostname")?,
                    boot_id: read_trimmed("/proc/sys/kernel/random/boot_id")?,
                    pid,
                    start_ticks: start_ticks(pid)?,
                })
            })
            .as_ref()
    }

    /// The form kept in the records.
    pub fn to_record(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.hostname, self.boot_id, self.pid, self.start_ticks
        )
    }

    /// Reads the recorded form; none for anything else (an older row, another writer).
    pub fn parse(recorded: &str) -> Option<HostProcess> {
        // Hostnames hold no ':', boot ids are UUIDs: the four parts split cleanly.
        let mut parts = recorded.split(':');
        let process = HostProcess {
            hostname: parts.next()?.to_string(),
            boot_id: parts.next()?.to_string(),
            pid: parts.next()?.parse().ok()?,
            start_ticks: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(process)
    }

    /// Whether the process still runs, as far as this process can see.
    pub fn liveness(&self) -> Liveness {
        let Some(here) = HostProcess::current() else {
            return Liveness::Unknown;
        };
        if self.hostname != here.hostname {
            return Liveness::Unknown;
        }
        if self.boot_id != here.boot_id {
            return Liveness::Gone;
        }
        match start_ticks(self.pid) {
            Some(ticks) if ticks == self.start_ticks => Liveness::Alive,
            _ => Liveness::Gone,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty() && !text.contains(':')).then(|| text.to_string())
}

/// Field 22 of `/proc/<pid>/stat`, for a process that has not exited: none for a zombie (a
/// killed host its parent has not reaped yet) as for no process. The second field (the command
/// name, in parentheses) may hold spaces and parentheses itself, so fields are counted after
/// its last `)`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // After the name come field 3 (state) onwards: field 22 is the 20th of them.
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_its_recorded_form_reads_back() {
        let me = HostProcess::current().expect("this machine has /proc");
        let parsed = HostProcess::parse(&me.to_record()).expect("reads back");
        assert_eq!(&parsed, me);
        assert_eq!(parsed.liveness(), Liveness::Alive);
    }

    #[test]
    fn a_finished_process_a_reused_pid_and_another_boot_are_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let me = HostProcess::current().expect("this machine has /proc");
        let child_process = HostProcess {
            pid,
            start_ticks: start_ticks(pid).expect("a running child"),
            ..me.clone()
        };
        assert_eq!(child_process.liveness(), Liveness::Alive);
        // Killed and not yet reaped (a zombie), then reaped: gone either way.
        child.kill().expect("kill");
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while child_process.liveness() != Liveness::Gone {
            assert!(
                std::time::Instant::now() < give_up,
                "a killed child stays alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().expect("wait");
        assert_eq!(child_process.liveness(), Liveness::Gone);
        // This process's pid with another start time: a pid since reused.
        let reused = HostProcess {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert_eq!(reused.liveness(), Liveness::Gone);
        let rebooted = HostProcess {
            boot_id: "another-boot".into(),
            ..me.clone()
        };
        assert_eq!(rebooted.liveness(), Liveness::Gone);
        let elsewhere = HostProcess {
            hostname: "another-machine".into(),
            ..me.clone()
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
    }

    #[test]
    fn other_forms_are_not_read() {
        for recorded in ["", "a:b:c", "h:b:12:x", "h:b:12:34:extra"] {
            assert_eq!(HostProcess::parse(recorded), None, "{recorded:?}");
        }
    }
}
