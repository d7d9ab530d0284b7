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
    Chat,
    ChatMessages,
    ChatStream,
    Asset(&'static Asset),
    Unknown,
}

/// The methods a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allow {
    GetHead,
    Post,
}

impl Allow {
    pub fn permits(self, method: &Method) -> bool {
        match self {
            Allow::GetHead => matches!(method, Method::Get | Method::Head),
            Allow::Post => *method == Method::Post,
        }
    }

    /// The `Allow` header's value.
    pub fn header(self) -> &'static str {
        match self {
            Allow::GetHead => "GET, HEAD",
            Allow::Post => "POST",
        }
    }
}

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
            "/chat" => Route::Chat,
            "/chat/messages" => Route::ChatMessages,
            "/chat/stream" => Route::ChatStream,
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
            | Route::Chat
            | Route::ChatStream
            | Route::Asset(_) => Some(Allow::GetHead),
            Route::StartConnection | Route::Pong | Route::Ping | Route::ChatMessages => {
                Some(Allow::Post)
            }
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
            Route::Chat => "/chat",
            Route::ChatMessages => "/chat/messages",
            Route::ChatStream => "/chat/stream",
            Route::Asset(_) => "/assets",
            Route::Unknown => "other",
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

    fn refused(&self, request: &Request, status: u16) {
        if status == 413 && matches!(Route::of(&request.path), Route::ChatMessages) {
            self.chat.count_refusal("too_large");
        }
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
    if let Some(allow) = route.allow()
        && !allow.permits(&request.method)
    {
        return method_not_allowed(allow);
    }
    match route {
        Route::LiveBox => Reply::html(200, views::auto_connect_page()),
        Route::OnDemand => Reply::html(200, views::on_demand_page()),
        Route::StartConnection => Reply::html(200, views::live_box()),
        Route::Pong => Reply::html(200, views::ping_button()),
        Route::Ping => Reply::html(200, views::pong_button()),
        Route::Connect => app.counter.stream(request),
        Route::Healthz => Reply::text(200, "ok\n"),
        Route::Metrics => Reply::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            (app.metrics.render() + &app.chat.render_metrics()).into_bytes(),
        ),
        Route::Chat => Reply::html(200, views::chat_page()),
        Route::ChatMessages => app.chat.publish(request),
        Route::ChatStream => app.chat.stream(request),
        Route::Asset(asset) => asset_reply(request, asset),
        Route::Unknown => Reply::html(404, views::not_found_page(&request.path)),
    }
}

fn method_not_allowed(allow: Allow) -> Reply {
    let detail = format!("This path answers {} only.", allow.header());
    Reply::html(405, views::error_page("Method not allowed", &detail))
        .with_header("Allow", allow.header())
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
    reply
        .with_header("ETag", etag)
        .with_header("Cache-Control", "public, max-age=31536000, immutable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Counter;
    use crate::app::chat::history::Bounds;
    use crate::app::chat::message::Limits;
    use crate::app::chat::{Chat, Room};
    use crate::log::Log;
    use crate::metrics::Metrics;
    use crate::tiny::Body;
    use std::sync::Arc;
    use std::time::Duration;

    fn app() -> App {
        let room = Room::open(Bounds::default(), None, std::time::SystemTime::now())
            .unwrap()
            .0;
        let chat = Chat::start(
            room,
            Limits::default(),
            0,
            Duration::from_secs(3),
            Log { quiet: true },
        );
        App {
            counter: Counter {
                interval: Duration::from_secs(1),
                retry: Duration::from_secs(3),
                panic_at_event: None,
            },
            chat: Arc::new(chat.unwrap()),
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
            ("/chat", Some(Allow::GetHead), "/chat"),
            ("/chat/messages", Some(Allow::Post), "/chat/messages"),
            ("/chat/stream", Some(Allow::GetHead), "/chat/stream"),
            ("/assets/htmx.min.js", Some(Allow::GetHead), "/assets"),
            ("/assets/app.css", Some(Allow::GetHead), "/assets"),
            ("/nope", None, "other"),
            ("/connect/", None, "other"),
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
        assert_eq!(reply.header("Allow"), Some("POST"));
        assert_eq!(reply.label, "/pong");
        assert_eq!(get("POST", "/connect").header("Allow"), Some("GET, HEAD"));
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
    fn a_plain_publish_answers_201_with_the_id_and_a_refusal_says_why() {
        let app = app();
        let mut post = Request::fake(
            "POST",
            "/chat/messages",
            &[("Content-Type", "application/x-www-form-urlencoded")],
        );
        post.body = b"text=hi&name=ann".to_vec();
        let published = handle(&post, &app);
        assert_eq!(published.status, 201);
        let id = String::from_utf8_lossy(published.bytes()).trim().to_owned();
        assert!(id.parse::<u64>().is_ok(), "{id:?}");
        post.body = b"text=+++".to_vec();
        let refused = handle(&post, &app);
        assert_eq!(refused.status, 422);
        assert_eq!(refused.label, "/chat/messages");
        let metrics = app.chat.render_metrics();
        assert!(
            metrics.contains("chat_messages_published_total 1\n"),
            "{metrics}"
        );
        assert!(metrics.contains("chat_publishes_refused_total{reason=\"empty\"} 1\n"));
        assert!(metrics.contains("chat_messages_held 1\n"));
    }

    #[test]
    fn an_htmx_publish_gets_a_fresh_form_that_keeps_the_name() {
        let app = app();
        let mut post = Request::fake(
            "POST",
            "/chat/messages",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("HX-Request", "true"),
            ],
        );
        post.body = b"text=hi&name=ann".to_vec();
        let reply = handle(&post, &app);
        assert_eq!(reply.status, 201);
        let html = String::from_utf8_lossy(reply.bytes()).into_owned();
        assert!(html.starts_with(r#"<form id="chat-form""#), "{html}");
        assert!(html.contains(r#"value="ann""#));
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
        let stale = get("GET", "/assets/app.css");
        assert_eq!(stale.status, 200);
        assert!(!stale.bytes().is_empty());
    }
}
