//! The server: binds the listener, runs tiny_http's request loop on the calling thread, and stops
//! when told to.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use crate::log::Log;
use crate::routes;
use crate::stop::Stop;
use crate::{Config, Error};

/// What every request handler and stream thread shares.
pub struct App {
    pub config: Config,
    pub log: Log,
    pub stop: Stop,
    pub live_streams: AtomicUsize,
}

/// A bound server. [`Server::run`] serves until [`Stopper::stop`] is called.
pub struct Server {
    http: Arc<tiny_http::Server>,
    app: Arc<App>,
    local_addr: SocketAddr,
}

/// Stops a running [`Server`] from another thread. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    http: Arc<tiny_http::Server>,
    app: Arc<App>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub fn bind(config: Config) -> Result<Server, Error> {
        let listener = TcpListener::bind(config.addr).map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|source| Error::Start(source.to_string()))?;
        let app = App {
            log: Log {
                quiet: config.quiet,
            },
            config,
            stop: Stop::default(),
            live_streams: AtomicUsize::new(0),
        };
        Ok(Server {
            http: Arc::new(http),
            app: Arc::new(app),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stopper(&self) -> Stopper {
        Stopper {
            http: self.http.clone(),
            app: self.app.clone(),
        }
    }

    /// How many event streams are open right now.
    pub fn live_streams(&self) -> usize {
        self.app
            .live_streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Serves requests until stopped. Each request is handled on this thread, except event
    /// streams, which each get a thread of their own.
    pub fn run(self) -> Result<(), Error> {
        loop {
            let received = self.http.recv();
            if self.app.stop.is_triggered() {
                break;
            }
            match received {
                Ok(request) => routes::handle(request, &self.app, Instant::now()),
                Err(error) => return Err(Error::Accept(error)),
            }
        }
        Ok(())
    }
}

impl Stopper {
    /// Asks the server to stop: the request loop returns and every stream ends its body.
    pub fn stop(&self) {
        self.app.stop.trigger();
        self.http.unblock();
    }

    pub fn live_streams(&self) -> usize {
        self.app
            .live_streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}
