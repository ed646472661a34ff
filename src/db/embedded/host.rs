//! What the machine gives the embedded PostgreSQL: the server binaries, the OS user it runs as
//! (`postgres` when roomd is root: `initdb` refuses root), private directories.

use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`, else whatever `PATH` finds.
pub fn find_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
    })
}

/// The uid/gid to run PostgreSQL as: the `postgres` user when we are root, else ourselves.
pub fn run_as() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .map(|f| Ok(Some((f[2].parse()?, f[3].parse()?))))
        .unwrap_or_else(|| {
            bail!("running as root, but there is no 'postgres' OS user to run PostgreSQL as (install Debian's postgresql package)")
        })
}

/// Gives `path` to the user PostgreSQL runs as (when that is not us), so the server can read it.
pub fn give_to_server_user(path: &Path) -> Result<()> {
    own(path, run_as()?)
}

pub fn own(path: &Path, who: Option<(u32, u32)>) -> Result<()> {
    if let Some((uid, gid)) = who {
        chown(path, Some(uid), Some(gid)).with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

pub fn command(bindir: &Path, program: &str, who: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bindir.join(program));
    if let Some((uid, gid)) = who {
        cmd.uid(uid).gid(gid);
    }
    // The postgres user may not be able to enter our working directory.
    cmd.current_dir("/");
    cmd.env_remove("PGDATA");
    cmd
}

pub fn private_temp_dir(tag: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "roomd-{tag}-{}-{}",
        std::process::id(),
        &crate::domain::sid::random_hex32()[..8]
    ));
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}
