//! A real `redis-server` for the tests of the `redis` feature (and the load benchmark, which
//! includes this file with `#[path]`): started on a free port with its data in a directory of
//! its own (append-only file, synced on every write, so a restart keeps the streams; or in
//! memory only, for the benchmark), stopped by its PID in `Drop`.

#![allow(dead_code)] // only the tests of the redis feature use it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long redis-server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    /// Keeps an append-only file synced on every write.
    persist: bool,
}

impl RedisServer {
    /// A redis-server on a free port; `None` (after saying so) when it is not installed, which
    /// fails the test under CI (`CI` set).
    pub fn start(name: &str) -> Option<RedisServer> {
        RedisServer::start_with(name, true)
    }

    /// A redis-server that keeps nothing on disk, as fast as it gets.
    pub fn start_in_memory(name: &str) -> Option<RedisServer> {
        RedisServer::start_with(name, false)
    }

    fn start_with(name: &str, persist: bool) -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have redis-server (Debian's redis-server)"
            );
            eprintln!("redis-server is not installed: skipped");
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("sse-htmx-redis-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        // A port nobody listens on now; redis-server binds it a moment later.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = RedisServer {
            child: None,
            port,
            dir,
            persist,
        };
        redis.restart();
        Some(redis)
    }

    /// The PID of redis-server while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills redis-server (SIGKILL: every answered write is in its append-only file already).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts redis-server again on the same port with the same data, and waits until it
    /// answers.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Starts redis-server again with its default user off: every client but [`RedisServer::admin`]
    /// is refused (`NOAUTH`) until [`Admin::let_everyone_in`].
    pub fn restart_locked(&mut self) -> Admin {
        self.restart_with(&["--user", "default", "off"]);
        let mut admin = Admin::connect(self.port);
        admin.command(&["AUTH", ADMIN, ADMIN]);
        admin
    }

    fn restart_with(&mut self, extra: &[&str]) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no"])
            .args([
                "--user",
                ADMIN,
                "on",
                &format!(">{ADMIN}"),
                "~*",
                "&*",
                "+@all",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether redis-server answers `PING` now (as the admin, who is let in whatever the
    /// default user may do).
    fn answers(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0; 12];
        stream
            .write_all(format!("AUTH {ADMIN} {ADMIN}\r\nPING\r\n").as_bytes())
            .is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+OK\r\n+PONG\r\n"
    }
}

/// The user (and password) of the tests' own commands.
const ADMIN: &str = "sse-htmx-tests";

/// A connection to redis-server for the tests' own commands.
pub struct Admin {
    reader: BufReader<TcpStream>,
}

impl Admin {
    fn connect(port: u16) -> Admin {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis-server");
        stream.set_read_timeout(Some(START_TIMEOUT)).unwrap();
        Admin {
            reader: BufReader::new(stream),
        }
    }

    /// Sends one command; its answer's first line (and, for a bulk string, the string), which
    /// must not be an error.
    pub fn command(&mut self, args: &[&str]) -> String {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send to redis-server");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("an answer");
        assert!(!line.starts_with('-'), "{args:?}: {line}");
        if line.starts_with('$') {
            line.clear();
            self.reader.read_line(&mut line).expect("a bulk string");
        }
        line.trim_end().to_owned()
    }

    /// Turns the default user back on: every client may connect again.
    pub fn let_everyone_in(&mut self) {
        self.command(&[
            "ACL", "SETUSER", "default", "on", "nopass", "~*", "&*", "+@all",
        ]);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
