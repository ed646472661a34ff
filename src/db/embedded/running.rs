//! A PostgreSQL already running on a data directory: another roomd's (connect to it) or one a
//! killed roomd left (wait for its watchdog to stop it).

use super::SUPERUSER;
use sqlx::postgres::PgConnectOptions;
use std::fs;
use std::path::{Path, PathBuf};

/// Connection options for a cluster that another roomd process is already running on
/// `data_root` (its `postmaster.pid` names the socket directory and port), so that CLI commands
/// reach the database of a running `roomd serve` instead of trying to start a second postmaster.
pub fn find_running(data_root: &Path) -> Option<PgConnectOptions> {
    let pid_file = fs::read_to_string(data_root.join("pgdata").join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = pid_file.lines().collect();
    let port: u16 = lines.get(3)?.trim().parse().ok()?;
    let socket_dir = PathBuf::from(lines.get(4)?.trim());
    socket_dir
        .join(format!(".s.PGSQL.{port}"))
        .exists()
        .then(|| {
            crate::db::connect::without_tls_on_sockets(
                PgConnectOptions::new()
                    .socket(socket_dir)
                    .port(port)
                    .username(SUPERUSER)
                    .database("postgres"),
            )
        })
}

/// A postmaster still alive on a data directory, as its `postmaster.pid` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postmaster {
    /// Its roomd still runs: connect to it (once it accepts connections).
    Owned(u32),
    /// Its roomd is gone (killed), and its watchdog is stopping it: wait until it has stopped,
    /// and never connect to it meanwhile, since it is about to go away.
    Orphaned(u32),
}

/// The postmaster alive on `data_root`, if any. A pid file left by a crash may name a pid that
/// now belongs to another program; only a live `postgres` process counts. Its parent tells
/// whether the roomd that started it still runs.
pub fn live_postmaster(data_root: &Path) -> Option<Postmaster> {
    let pid_file = fs::read_to_string(data_root.join("pgdata").join("postmaster.pid")).ok()?;
    let pid: u32 = pid_file.lines().next()?.trim().parse().ok()?;
    if pid == std::process::id() {
        return None;
    }
    let comm = |pid: u32| fs::read_to_string(format!("/proc/{pid}/comm")).ok();
    if comm(pid)?.trim() != "postgres" {
        return None;
    }
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
    // A zombie (state Z) has exited and only waits to be reaped.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    let ppid: u32 = fields.next()?.parse().ok()?;
    let owner_is_roomd = ppid > 1 && comm(ppid).is_some() && comm(ppid) == comm(std::process::id());
    Some(if owner_is_roomd {
        Postmaster::Owned(pid)
    } else {
        Postmaster::Orphaned(pid)
    })
}
