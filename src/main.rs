use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use sse_htmx::{Config, Launch, Log, Server, Stopper, signals};

/// How long a second signal waits for its line to be written before it exits.
const EXIT_FLUSH: Duration = Duration::from_millis(100);

/// The exit code a second SIGINT or SIGTERM asked for (128 + its number), once it is taken; 0
/// before. Its `--exec` programs killed, the stop under way may end before the signal's thread
/// has written its line and exited: the process then exits with this code all the same.
static EXITING_NOW: AtomicU8 = AtomicU8::new(0);

const USAGE: &str = "\
sse-htmx: serves a page whose box updates live over Server-Sent Events.

Usage: sse-htmx [OPTIONS]

Options:
      --addr <ADDR>          Address to listen on: IP:PORT, localhost:PORT, or :PORT for
                             every interface ([::], or 0.0.0.0 where IPv6 is off)
                             [default: 127.0.0.1:8000]
      --interval <TIME>      Time between two events of a stream, e.g. 1s, 250ms [default: 1s]
      --retry <TIME>         Reconnection delay suggested to clients (SSE retry:) [default: 3s]
      --keepalive <TIME>     Longest silence on a stream before a keep-alive comment [default: 15s]
      --max-streams <N>      Event streams (/connect, the feeds' streams) held at once before a
                             new one gets 503; a feed's stream holds two descriptors, and
                             gets 503 too when they would not fit
                             [default: derived from the host's limits, printed at start]
      --idle-timeout <TIME>  Close a connection that is not a stream and starts no request
                             for this long [default: 30s]
      --write-timeout <TIME> Give up on a client whose socket accepts nothing for this long
                             [default: 10s]
      --history <N>          Messages held in memory per feed for late and returning pages
                             (also bounded at 1 MiB of text) [default: 1000]
      --store <PATH>         Append every feed's messages to this journal and load it at
                             start, so they survive a restart [default: memory only]
      --max-feeds <N>        Feeds that may exist, the chat among them; a message that would
                             start one more is refused with 507 [default: 64]
      --max-message <N>      The longest message, in characters, at most 16384 [default: 2000]
      --publish-limit <N>    Messages a second from one client address to all feeds, in
                             bursts of up to 4 x N; 0 for no limit [default: 5]
      --exec <NAME=COMMAND>  Run COMMAND with /bin/sh -c; each line it prints is a message in
                             the feed NAME; started again when it exits (repeatable)
      --token-file <PATH>    POST /feeds/NAME needs the header Authorization: Bearer TOKEN,
                             TOKEN being this file's first line (not the chat's own form)
                             [default: no token]
      --cors <ORIGIN>        Pages from ORIGIN (http://host:port, or *) may read the event
                             streams (repeatable) [default: this server's pages only]
  -q, --quiet                Print nothing but a fatal error
  -h, --help                 Print this help
  -V, --version              Print the version

Routes: / (live box), /on-demand (box on a click), /connect (the event stream),
/chat (the chatroom), /chat/stream (its messages), POST /chat/messages (publish:
curl -d text=hi URL/chat/messages), /feeds (the feeds), /feeds/NAME (a feed's
page; POST to publish the same way), /feeds/NAME/stream, /htmx4/, /htmx4/on-demand,
/htmx4/chat, /htmx4/feeds, /htmx4/feeds/NAME (the same pages for htmx 4),
/healthz, /metrics (Prometheus).
SIGINT or SIGTERM ends every stream cleanly and exits 0; a second signal exits at once.
SIGHUP runs the program file again in place (same PID, same flags): replace the file,
then kill -HUP; no connection is refused and no message lost. A file that fails
--version, asked after these flags, is not run. A terminal that hangs up (its
SIGHUP) stops the server.";

/// The flag a build with the `redis` feature adds, shown after `--store`.
#[cfg(feature = "redis")]
const REDIS_OPTION: &str = concat!(
    "      --redis <URL>          Share every feed with each instance that names this Redis\n",
    "                             (redis://HOST:PORT/DB): publishes go to the feed's stream,\n",
    "                             each instance follows them; not with --store [default: none]\n",
);

/// The help text of this build.
fn usage() -> std::borrow::Cow<'static, str> {
    #[cfg(feature = "redis")]
    return USAGE
        .replacen(
            "      --max-feeds",
            &format!("{REDIS_OPTION}      --max-feeds"),
            1,
        )
        .into();
    #[cfg(not(feature = "redis"))]
    USAGE.into()
}

fn parse_args() -> Result<Option<Config>, lexopt::Error> {
    use lexopt::prelude::*;

    let mut config = Config::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        let flag = match arg {
            Long(name) => format!("--{name}"),
            Short(letter) => format!("-{letter}"),
            Value(value) => return Err(lexopt::Error::UnexpectedArgument(value)),
        };
        let mut apply = || -> Result<bool, lexopt::Error> {
            match flag.as_str() {
                "--addr" => config.addr = parser.value()?.parse_with(socket_address)?,
                "--interval" => config.interval = parser.value()?.parse_with(positive_duration)?,
                "--retry" => config.retry = parser.value()?.parse_with(positive_duration)?,
                "--keepalive" => {
                    config.keepalive = parser.value()?.parse_with(positive_duration)?
                }
                "--max-streams" => {
                    config.max_streams = Some(parser.value()?.parse_with(at_least_one)?)
                }
                "--idle-timeout" => {
                    config.idle_timeout = parser.value()?.parse_with(positive_duration)?
                }
                "--write-timeout" => {
                    config.write_timeout = parser.value()?.parse_with(positive_duration)?
                }
                "--history" => config.history = parser.value()?.parse_with(at_least_one)?,
                "--store" => config.store = Some(parser.value()?.into()),
                "--max-feeds" => config.max_feeds = parser.value()?.parse_with(at_least_one)?,
                #[cfg(feature = "redis")]
                "--redis" => config.redis = Some(parser.value()?.string()?),
                // Named rather than left unknown: the flag exists, in another build.
                #[cfg(not(feature = "redis"))]
                "--redis" => return Err("--redis: this build has no Redis support".into()),
                "--max-message" => {
                    config.max_message = parser.value()?.parse_with(message_length)?
                }
                "--publish-limit" => config.publish_limit = parser.value()?.parse()?,
                "--exec" => config.exec.push(parser.value()?.parse_with(program)?),
                "--token-file" => config.token_file = Some(parser.value()?.into()),
                "--cors" => config.cors.push(parser.value()?.parse_with(origin)?),
                "-q" | "--quiet" => config.quiet = true,
                // Written directly (nothing runs yet that a full pipe could hold up), and an error
                // is ignored: `sse-htmx --help | head -1` is no failure.
                "-h" | "--help" => {
                    let _ = writeln!(std::io::stdout(), "{}", usage());
                    return Ok(false);
                }
                "-V" | "--version" => {
                    let _ = writeln!(std::io::stdout(), "sse-htmx {}", env!("CARGO_PKG_VERSION"));
                    return Ok(false);
                }
                _ => return Err(lexopt::Error::UnexpectedOption(flag.clone())),
            }
            Ok(true)
        };
        if !apply().map_err(|error| naming(&flag, error))? {
            return Ok(None);
        }
    }
    Ok(Some(config))
}

/// An error about a flag's value names the flag: `--interval "soon": ...`.
fn naming(flag: &str, error: lexopt::Error) -> lexopt::Error {
    match error {
        lexopt::Error::ParsingFailed { value, error } => {
            lexopt::Error::Custom(format!("{flag} {value:?}: {error}").into())
        }
        other => other,
    }
}

/// `IP:PORT`; `:PORT`, every interface (`[::]`, which the server makes dual-stack, or `0.0.0.0`
/// where the host has no IPv6); or `localhost:PORT`, 127.0.0.1. Other names are not looked up:
/// the system's resolver, linked in, would add about 24 KB to the static binary, more than its
/// size budget has to spare.
fn socket_address(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = text.rsplit_once(':').unwrap_or_default();
    let ip: Option<IpAddr> = match host {
        "" => Some(Ipv6Addr::UNSPECIFIED.into()),
        _ if host.eq_ignore_ascii_case("localhost") => Some(Ipv4Addr::LOCALHOST.into()),
        _ => None,
    };
    match (ip, port.parse()) {
        (Some(ip), Ok(port)) => Ok(SocketAddr::new(ip, port)),
        _ => text.parse().map_err(|error| {
            format!("{error} (expected IP:PORT, :PORT or localhost:PORT, e.g. [::1]:8000)")
        }),
    }
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(error) => Err(error.to_string()),
    }
}

/// The longest message, in characters: at least one, at most [`Config::MAX_MESSAGE`].
fn message_length(text: &str) -> Result<usize, String> {
    match at_least_one(text)? {
        n if n > Config::MAX_MESSAGE => Err(format!(
            "at most {}: a message is published in a request body of at most 16 KiB",
            Config::MAX_MESSAGE
        )),
        n => Ok(n),
    }
}

/// `NAME=COMMAND`; the name is checked as a feed's by the server.
fn program(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, command)) if !name.is_empty() && !command.trim().is_empty() => {
            Ok((name.to_owned(), command.to_owned()))
        }
        _ => Err("expected NAME=COMMAND, e.g. 'load=cat /proc/loadavg'".into()),
    }
}

/// `*`, or an origin as browsers send it (`http://host:port`, lowercase, no path); a final `/`
/// is dropped, and so is the scheme's own port, which browsers leave out.
fn origin(text: &str) -> Result<String, String> {
    let origin = text.strip_suffix('/').unwrap_or(text).to_ascii_lowercase();
    if origin == "*" {
        return Ok(origin);
    }
    let (scheme, own_port) = match origin.strip_prefix("https://") {
        Some(_) => ("https://", ":443"),
        None => ("http://", ":80"),
    };
    let host = origin
        .strip_prefix(scheme)
        .map(|h| h.strip_suffix(own_port).unwrap_or(h));
    match host {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(format!("{scheme}{host}")),
        _ => Err("expected * or http(s)://HOST[:PORT], e.g. http://board:8080".into()),
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 1s, 250ms)"))?;
    if duration < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(duration)
}

/// `sse-htmx listening; open http://127.0.0.1:8000/`. A wildcard address is named with loopback's
/// URL (scripts and tests take the first URL) and a word on reaching it from elsewhere.
fn start_line(local: SocketAddr) -> String {
    if !local.ip().is_unspecified() {
        return format!("sse-htmx listening; open http://{local}/");
    }
    let port = local.port();
    format!(
        "sse-htmx listening on {local}; open http://127.0.0.1:{port}/ (from elsewhere: this host's address)"
    )
}

/// The first SIGINT or SIGTERM stops the server cleanly; a second one exits at once. SIGHUP
/// replaces the process image with the program file, if that starts, unless it says that the
/// server's terminal has gone (a closed window, an ended `ssh` session): it then stops the
/// server as SIGTERM does, as it would any program run there. Logging never waits nor panics
/// (see [`Log`]), so neither can keep a signal from being handled.
fn handle_signals(stopper: Stopper, log: Log) -> std::io::Result<()> {
    let signals = signals::Signals::new()?;
    // A terminal that hangs up is taken from every process of its session before any of them
    // is sent SIGHUP (by the kernel, or by the shell passing it on), so it can no longer be
    // opened then; a server started with none never had one to lose.
    let terminal = || std::fs::File::open("/dev/tty").is_ok();
    let had_terminal = terminal();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            let error = signals.forever(|signal| {
                let hung_up = signal == libc::SIGHUP && had_terminal && !terminal();
                if signal == libc::SIGHUP && !hung_up {
                    match stopper.upgrade() {
                        Ok(version) => {
                            log.line(format_args!("sse-htmx: signal {signal}: running {version}"))
                        }
                        Err(why) => log.line(format_args!(
                            "sse-htmx: signal {signal}: not upgrading: {why}"
                        )),
                    }
                } else if !stopping {
                    let why = if hung_up {
                        " (the terminal hung up)"
                    } else {
                        ""
                    };
                    log.line(format_args!(
                        "sse-htmx: signal {signal}{why}: stopping (again to exit at once)"
                    ));
                    stopper.stop();
                    stopping = true;
                } else if !hung_up {
                    // (A hangup says it again, from the kernel and from the shell: the stop goes
                    // on.) Queued before the code is set: a stop that ends first and exits with
                    // the code flushes this line too.
                    log.line(format_args!("sse-htmx: signal {signal}: exiting now"));
                    EXITING_NOW.store(128 + signal as u8, Ordering::SeqCst);
                    sse_htmx::kill_programs();
                    Log::flush(EXIT_FLUSH);
                    std::process::exit(128 + signal);
                }
            });
            log.line(format_args!("sse-htmx: no more signals taken: {error}"));
        })?;
    Ok(())
}

/// Names the process after its program file (its first argument's last part, as the kernel
/// keeps it: 15 bytes): a heal runs `/proc/self/exe`, which the kernel would name `exe`, and
/// `pgrep sse-htmx` would no longer find it.
fn name_the_process() {
    let Some(program) = std::env::args_os().next() else {
        return;
    };
    let path = std::path::Path::new(&program);
    let Some(name) = path.file_name().map(std::os::unix::ffi::OsStrExt::as_bytes) else {
        return;
    };
    let name = &name[..name.len().min(15)];
    if let Ok(name) = std::ffi::CString::new(name) {
        let _ = rustix::thread::set_name(&name);
    }
}

fn main() -> ExitCode {
    // Before any thread starts, so that every thread blocks them and one takes them (see
    // `handle_signals`); until then one waits, pending, rather than ending the process.
    signals::block();
    name_the_process();
    // First, before anything opens a descriptor: the listener and the messages the image before
    // this one handed over, if this process replaced its image.
    let (launch, launch_problem) = match Launch::from_process() {
        Ok((launch, problem)) => (
            Some(launch),
            problem.map(|problem| format!("ignoring the handoff: {problem}")),
        ),
        Err(error) => (
            None,
            Some(format!(
                "cannot find the program file ({error}); SIGHUP will not upgrade"
            )),
        ),
    };
    let config = match parse_args() {
        Ok(Some(config)) => config,
        Ok(None) => return ExitCode::SUCCESS,
        Err(error) => {
            Log::fatal(format_args!("sse-htmx: {error} (see --help)"));
            return ExitCode::from(2);
        }
    };
    let log = Log {
        quiet: config.quiet,
    };
    if let Some(problem) = launch_problem {
        log.line(format_args!("sse-htmx: {problem}"));
    }
    let server = match Server::start(config, launch) {
        Ok(server) => server,
        Err(error) => {
            Log::fatal(format_args!("sse-htmx: {error}"));
            return ExitCode::from(2);
        }
    };
    if let Err(error) = handle_signals(server.stopper(), log) {
        Log::fatal(format_args!("sse-htmx: cannot handle signals: {error}"));
        return ExitCode::FAILURE;
    }
    let (open_files, hard) = server.open_files();
    let raises = match server.capacity().above_limit {
        0 => String::new(),
        room => {
            let ceiling = open_files.saturating_add(room as u64);
            format!(", up to {ceiling} for the feed streams' second descriptors")
        }
    };
    log.line(format_args!(
        "sse-htmx: capacity {} (open files: {open_files}{raises})",
        server.capacity()
    ));
    if hard < 4096 {
        log.line(format_args!(
            "sse-htmx: the open-file limit is low ({hard}); raise it (ulimit -Hn) for more streams"
        ));
    }
    log.stdout(format_args!("{}", start_line(server.local_addr())));
    match server.run() {
        Ok(()) => match EXITING_NOW.load(Ordering::SeqCst) {
            0 => ExitCode::SUCCESS,
            code => {
                Log::flush(EXIT_FLUSH);
                ExitCode::from(code)
            }
        },
        Err(error) => {
            Log::fatal(format_args!("sse-htmx: {error}"));
            ExitCode::FAILURE
        }
    }
}
