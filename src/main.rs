use std::process::ExitCode;
use std::time::Duration;

use sse_htmx::{Config, Server};

const USAGE: &str = "\
sse-htmx: serves a page whose box updates live over Server-Sent Events.

Usage: sse-htmx [OPTIONS]

Options:
      --addr <ADDR>        Address to listen on [default: 127.0.0.1:8000]
      --interval <TIME>    Time between two events of a stream, e.g. 1s, 250ms [default: 1s]
  -q, --quiet              No log lines on stderr
  -h, --help               Print this help
  -V, --version            Print the version

Routes: / (live box), /on-demand (box on a click), /connect (the event stream).";

fn parse_args() -> Result<Option<Config>, lexopt::Error> {
    use lexopt::prelude::*;

    let mut config = Config::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("addr") => {
                let value = parser.value()?;
                config.addr = value.parse().map_err(|e| lexopt::Error::ParsingFailed {
                    value: value.string().unwrap_or_default(),
                    error: format!("{e} (expected IP:PORT, e.g. 127.0.0.1:8000 or [::1]:8000)")
                        .into(),
                })?;
            }
            Long("interval") => config.interval = parser.value()?.parse_with(parse_interval)?,
            Short('q') | Long("quiet") => config.quiet = true,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("sse-htmx {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(config))
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 1s, 250ms)"))?;
    if interval < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    Ok(interval)
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(Some(config)) => config,
        Ok(None) => return ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sse-htmx: {error} (see --help)");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("sse-htmx: {error}");
            return ExitCode::from(2);
        }
    };
    println!("sse-htmx listening; open http://{}/", server.local_addr());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sse-htmx: {error}");
            ExitCode::FAILURE
        }
    }
}
