//! A peer server to compare with: another program serving the same kind of chatroom, started on
//! a free port of 127.0.0.1. It takes the port as its first argument and prints no banner, so
//! this side picks the port and waits until the peer accepts connections.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::settings::PEER_START_TIMEOUT;

/// A running peer. Dropping it kills it (by its PID, through the `Child`) and reaps it.
pub struct PeerProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl PeerProcess {
    /// Starts `bin PORT` on a free port and waits up to [`PEER_START_TIMEOUT`] until it accepts a
    /// connection.
    pub fn launch(bin: &Path) -> Result<PeerProcess, String> {
        PeerProcess::launch_with(bin, |port| vec![port.to_string()])
    }

    /// Like [`PeerProcess::launch`], with the arguments `args` gives for the port.
    pub fn launch_with(
        bin: &Path,
        args: impl Fn(u16) -> Vec<String>,
    ) -> Result<PeerProcess, String> {
        let addr = free_port().map_err(|error| format!("no free port: {error}"))?;
        let child = Command::new(bin)
            .args(args(addr.port()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Its panics, if any, go with this process's progress lines.
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", bin.display()))?;
        // The guard exists from here on, so an early return below kills the child.
        let mut peer = PeerProcess { child, addr };
        let deadline = Instant::now() + PEER_START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(peer);
            }
            if !peer.is_alive() {
                return Err(format!("the peer exited: {}", peer.exit_description()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the peer did not accept connections on {addr} in time"
                ));
            }
            // The peer prints nothing when it is ready; asking again is the only way to know.
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn exit_description(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running".into(),
            Err(error) => format!("unknown ({error})"),
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        // Fails harmlessly if the peer has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 that was free a moment ago: bound, read and released. Another program
/// could take it before the peer binds it; the peer would then exit, which `launch` reports.
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}
