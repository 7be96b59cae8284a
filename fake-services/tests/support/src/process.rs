//! The `fake-services` binary as a process of its own, and what it holds
//! in memory: for the reset test and the soak and ledger benchmarks, which
//! measure a server's memory apart from the client's.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The binary serving on a free port of 127.0.0.1; killed (by its own pid)
/// and reaped on drop.
pub struct SpawnedFakes {
    pub child: Child,
    pub addr: SocketAddr,
}

impl SpawnedFakes {
    /// Starts `binary` (the test's `env!("CARGO_BIN_EXE_fake-services")`)
    /// and reads the address it bound from its banner's first line.
    pub fn start(binary: &Path) -> Result<SpawnedFakes, String> {
        let mut child = Command::new(binary)
            .args(["--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut first = String::new();
        let read = child
            .stdout
            .take()
            .ok_or_else(|| "no stdout".to_string())
            .and_then(|out| {
                std::io::BufReader::new(out)
                    .read_line(&mut first)
                    .map_err(|e| format!("reading fake-services' banner: {e}"))
            });
        let addr = read.and_then(|_| {
            first
                .trim()
                .rsplit("http://")
                .next()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("fake-services said {first:?}, not its address"))
        });
        match addr {
            Ok(addr) => Ok(SpawnedFakes { child, addr }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(why)
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its resident memory, in bytes.
    pub fn resident(&self) -> Option<u64> {
        resident(self.child.id())
    }
}

impl Drop for SpawnedFakes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resident memory of process `pid` in bytes (`/proc/PID/statm`;
/// `None` off Linux or when it is gone).
pub fn resident(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
