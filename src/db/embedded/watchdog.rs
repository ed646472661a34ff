//! The watchdog that stops an embedded PostgreSQL when the process that started it exits, however
//! it exits (SIGKILL and panics included), and removes what was temporary.

use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The watchdog waits for its stdin to close (this process exited or dropped us), then stops the
/// postmaster named by `postmaster.pid` (SIGINT: fast shutdown; SIGKILL after 30 s) and removes
/// the temporary directories.
pub fn spawn_watchdog(
    data_dir: &Path,
    socket_dir: &Path,
    remove: Option<&Path>,
) -> Result<(Child, ChildStdin)> {
    const SCRIPT: &str = r#"
cat >/dev/null 2>&1
pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ]; then
  kill -INT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$2"
[ -n "$3" ] && rm -rf "$3"
exit 0
"#;
    let mut child = Command::new("/bin/sh")
        .args(["-c", SCRIPT, "roomd-pg-watchdog"])
        .arg(data_dir)
        .arg(socket_dir)
        .arg(remove.map(Path::as_os_str).unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .process_group(0)
        .spawn()
        .context("starting the PostgreSQL watchdog")?;
    let stdin = child.stdin.take().expect("piped stdin");
    Ok((child, stdin))
}
