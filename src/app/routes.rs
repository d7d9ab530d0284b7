//! Every route the server has: [`Route`] is the only route table, and [`handle`] answers each.

use super::App;
use super::assets::{self, Asset};
use super::views;
use crate::tiny::{Handler, Method, Reply, Request};

/// What a path is. Each `match` on it below has no catch-all arm, so a new route does not compile
/// until it says which methods it takes and how it is counted.
#[derive(Clone, Copy)]
pub enum Route {
    LiveBox,
    OnDemand,
    StartConnection,
    Pong,
    Ping,
    Connect,
    Healthz,
    Metrics,
    Asset(&'static Asset),
    /// `*`, the server as a whole (`OPTIONS *`).
    Server,
    Unknown,
}

/// The methods a route takes. Every route answers `OPTIONS` with its `Allow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allow {
    GetHead,
    Post,
    /// `OPTIONS` only, asking what the server implements.
    Options,
}

impl Allow {
    pub fn permits(self, method: &Method) -> bool {
        match self {
            Allow::GetHead => matches!(method, Method::Get | Method::Head | Method::Options),
            Allow::Post => matches!(method, Method::Post | Method::Options),
            Allow::Options => *method == Method::Options,
        }
    }

    /// The `Allow` header's value: for `*`, every method the server implements.
    pub fn header(self) -> &'static str {
        match self {
            Allow::GetHead => "GET, HEAD, OPTIONS",
            Allow::Post => "OPTIONS, POST",
            Allow::Options => "GET, HEAD, OPTIONS, POST",
        }
    }
}

/// How a reply may be cached (RFC 9111 §5.2.2): pages and fragments are checked with the
/// server before each use, health and metrics never stored, assets kept (see `asset_reply`).
const REVALIDATE: &str = "no-cache";
const NEVER_STORE: &str = "no-store";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

impl Route {
    /// The route at `path`, matched exactly.
    pub fn of(path: &str) -> Route {
        match path {
            "/" => Route::LiveBox,
            "/on-demand" => Route::OnDemand,
            "/start-connection" => Route::StartConnection,
            "/pong" => Route::Pong,
            "/ping" => Route::Ping,
            "/connect" => Route::Connect,
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            "*" => Route::Server,
            path => assets::find(path).map_or(Route::Unknown, Route::Asset),
        }
    }

    /// The methods the route takes; `None` for a path that is no route.
    pub fn allow(self) -> Option<Allow> {
        match self {
            Route::LiveBox
            | Route::OnDemand
            | Route::Connect
            | Route::Healthz
            | Route::Metrics
            | Route::Asset(_) => Some(Allow::GetHead),
            Route::StartConnection | Route::Pong | Route::Ping => Some(Allow::Post),
            Route::Server => Some(Allow::Options),
            Route::Unknown => None,
        }
    }

    /// The route as a metrics label: a fixed set, whatever clients send.
    pub fn label(self) -> &'static str {
        match self {
            Route::LiveBox => "/",
            Route::OnDemand => "/on-demand",
            Route::StartConnection => "/start-connection",
            Route::Pong => "/pong",
            Route::Ping => "/ping",
            Route::Connect => "/connect",
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::Asset(_) => "/assets",
            Route::Server | Route::Unknown => "other",
        }
    }
}

/// The application behind the HTTP layer.
impl Handler for App {
    fn handle(&self, request: &Request) -> Reply {
        handle(request, self)
    }

    fn label(&self, request: &Request) -> &'static str {
        Route::of(&request.path).label()
    }

    fn busy(&self) -> Reply {
        Reply::text(503, "too many streams, try again later\n")
    }
}

/// Answers one request.
pub fn handle(request: &Request, app: &App) -> Reply {
    let route = Route::of(&request.path);
    answer(route, request, app).for_route(route.label())
}

fn answer(route: Route, request: &Request, app: &App) -> Reply {
    match request.method {
        Method::Get | Method::Head | Method::Post | Method::Options => {}
        // RFC 9110 §9.1: a method no route implements.
        Method::Other(_) => return not_implemented(&request.method),
    }
    if let Some(allow) = route.allow() {
        if request.method == Method::Options {
            return options(allow);
        }
        if !allow.permits(&request.method) {
            return method_not_allowed(allow);
        }
    }
    match route {
        Route::LiveBox => page(views::auto_connect_page()),
        Route::OnDemand => page(views::on_demand_page()),
        Route::StartConnection => page(views::live_box()),
        Route::Pong => page(views::ping_button()),
        Route::Ping => page(views::pong_button()),
        Route::Connect => app.counter.stream(request),
        Route::Healthz => Reply::text(200, "ok\n").with_header("Cache-Control", NEVER_STORE),
        Route::Metrics => Reply::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            app.metrics.render().into_bytes(),
        )
        .with_header("Cache-Control", NEVER_STORE),
        Route::Asset(asset) => asset_reply(request, asset),
        // Only OPTIONS reaches here, answered above.
        Route::Server => options(Allow::Options),
        Route::Unknown => Reply::html(404, views::not_found_page(&request.path))
            .with_header("Cache-Control", REVALIDATE),
    }
}

/// A page or a fragment.
fn page(markup: maud::Markup) -> Reply {
    Reply::html(200, markup).with_header("Cache-Control", REVALIDATE)
}

/// RFC 9110 §9.3.7: what the path takes, and no body.
fn options(allow: Allow) -> Reply {
    Reply::new(204, "text/plain; charset=utf-8", &[][..]).with_header("Allow", allow.header())
}

fn method_not_allowed(allow: Allow) -> Reply {
    let detail = format!("This path answers {} only.", allow.header());
    Reply::html(405, views::error_page("Method not allowed", &detail))
        .with_header("Allow", allow.header())
        .with_header("Cache-Control", REVALIDATE)
}

fn not_implemented(method: &Method) -> Reply {
    let detail = format!(
        "This server does not implement {}; it answers {}.",
        method.as_str().escape_debug(),
        Allow::Options.header()
    );
    Reply::html(501, views::error_page("Not implemented", &detail))
        .with_header("Cache-Control", REVALIDATE)
}

fn asset_reply(request: &Request, asset: &'static Asset) -> Reply {
    let etag = asset.etag();
    let fresh = request
        .header("If-None-Match")
        .is_some_and(|tags| assets::etag_matches(tags, &etag));
    let reply = if fresh {
        Reply::new(304, asset.content_type, &[][..])
    } else {
        Reply::new(200, asset.content_type, asset.body)
    };
    // A 304 carries the validators and the caching of the 200 it stands for (RFC 9110 §15.4.5).
    reply
        .with_header("ETag", etag)
        .with_header("Cache-Control", IMMUTABLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Counter;
    use crate::metrics::Metrics;
    use crate::tiny::Body;
    use std::sync::Arc;
    use std::time::Duration;

    fn app() -> App {
        App {
            counter: Counter {
                interval: Duration::from_secs(1),
                retry: Duration::from_secs(3),
                panic_at_event: None,
            },
            metrics: Arc::new(Metrics::default()),
        }
    }

    fn get(method: &str, url: &str) -> Reply {
        handle(&Request::fake(method, url, &[]), &app())
    }

    #[test]
    fn every_path_is_one_route_with_its_methods_and_label() {
        let table = [
            ("/", Some(Allow::GetHead), "/"),
            ("/on-demand", Some(Allow::GetHead), "/on-demand"),
            ("/start-connection", Some(Allow::Post), "/start-connection"),
            ("/pong", Some(Allow::Post), "/pong"),
            ("/ping", Some(Allow::Post), "/ping"),
            ("/connect", Some(Allow::GetHead), "/connect"),
            ("/healthz", Some(Allow::GetHead), "/healthz"),
            ("/metrics", Some(Allow::GetHead), "/metrics"),
            ("/assets/htmx.min.js", Some(Allow::GetHead), "/assets"),
            ("/assets/app.css", Some(Allow::GetHead), "/assets"),
            ("/nope", None, "other"),
            ("/connect/", None, "other"),
            ("*", Some(Allow::Options), "other"),
        ];
        for (path, allow, label) in table {
            let route = Route::of(path);
            assert_eq!(route.allow(), allow, "{path}");
            assert_eq!(route.label(), label, "{path}");
        }
    }

    #[test]
    fn pages_buttons_and_health_answer_with_their_bodies() {
        let page = get("GET", "/");
        assert_eq!(page.status, 200);
        assert_eq!(page.label, "/");
        assert!(String::from_utf8_lossy(page.bytes()).contains(r#"sse-connect="/connect""#));
        assert_eq!(
            get("POST", "/pong").bytes(),
            br#"<button hx-post="/ping" hx-swap="outerHTML">Ping</button>"#
        );
        assert_eq!(get("GET", "/healthz").bytes(), b"ok\n");
        assert_eq!(get("HEAD", "/healthz").status, 200);
    }

    #[test]
    fn the_wrong_method_is_405_with_allow_and_keeps_its_label() {
        let reply = get("GET", "/pong");
        assert_eq!(reply.status, 405);
        assert_eq!(reply.header("Allow"), Some("OPTIONS, POST"));
        assert_eq!(reply.label, "/pong");
        assert_eq!(
            get("POST", "/connect").header("Allow"),
            Some("GET, HEAD, OPTIONS")
        );
    }

    #[test]
    fn a_method_no_route_implements_is_501_anywhere() {
        for (method, path) in [("PATCH", "/ping"), ("DELETE", "/nope"), ("get", "/")] {
            let reply = get(method, path);
            assert_eq!(reply.status, 501, "{method} {path}");
            assert_eq!(reply.header("Allow"), None);
        }
    }

    #[test]
    fn options_answers_what_the_path_takes() {
        for (path, allow) in [
            ("/", "GET, HEAD, OPTIONS"),
            ("/ping", "OPTIONS, POST"),
            ("/assets/app.css", "GET, HEAD, OPTIONS"),
            ("*", "GET, HEAD, OPTIONS, POST"),
        ] {
            let reply = get("OPTIONS", path);
            assert_eq!(reply.status, 204, "{path}");
            assert_eq!(reply.header("Allow"), Some(allow), "{path}");
            assert!(reply.bytes().is_empty());
        }
        assert_eq!(get("OPTIONS", "/nope").status, 404);
    }

    #[test]
    fn every_reply_says_how_to_cache_it() {
        for (method, path, cache) in [
            ("GET", "/", REVALIDATE),
            ("GET", "/on-demand", REVALIDATE),
            ("POST", "/ping", REVALIDATE),
            ("GET", "/ping", REVALIDATE),
            ("GET", "/nope", REVALIDATE),
            ("GET", "/healthz", NEVER_STORE),
            ("HEAD", "/metrics", NEVER_STORE),
            ("GET", "/assets/app.css", IMMUTABLE),
        ] {
            assert_eq!(
                get(method, path).header("Cache-Control"),
                Some(cache),
                "{method} {path}"
            );
        }
        // The stream layer writes the stream's own.
        assert_eq!(get("GET", "/connect").header("Cache-Control"), None);
    }

    #[test]
    fn an_unknown_path_is_404_with_the_path_escaped() {
        let reply = get("POST", "/<b>");
        assert_eq!(reply.status, 404);
        assert_eq!(reply.label, "other");
        assert!(String::from_utf8_lossy(reply.bytes()).contains("/&lt;b&gt;"));
    }

    #[test]
    fn connect_is_an_event_stream() {
        let reply = get("GET", "/connect?x=1");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.label, "/connect");
        assert!(matches!(reply.body, Body::Events(_)));
    }

    #[test]
    fn an_asset_is_304_when_its_tag_matches() {
        let etag = assets::find("/assets/app.css").unwrap().etag();
        let fresh = handle(
            &Request::fake("GET", "/assets/app.css?v=1", &[("If-None-Match", &etag)]),
            &app(),
        );
        assert_eq!(fresh.status, 304);
        assert!(fresh.bytes().is_empty());
        assert_eq!(fresh.header("ETag"), Some(etag.as_str()));
        assert_eq!(fresh.header("Cache-Control"), Some(IMMUTABLE));
        let stale = get("GET", "/assets/app.css");
        assert_eq!(stale.status, 200);
        assert!(!stale.bytes().is_empty());
    }
}
