//! Every route the server has: [`Route`] is the only route table, and [`handle`] answers each.

use super::App;
use super::assets::{self, Asset};
use super::chat::feeds::{CHAT, valid_name};
use super::views::{self, Flavor};
use crate::tiny::{Handler, MAX_BODY, Method, Reply, Request, SMALL_BODY};

/// What a path is. Each `match` on it below has no catch-all arm, so a new route does not compile
/// until it says which methods it takes and how it is counted. A feed's route holds its name,
/// checked (see `feeds::valid_name`), and owned: the layer works the route out once per request,
/// before the body is read ([`Handler::route`]), and carries it to the thread that reads it.
pub enum Route {
    LiveBox(Flavor),
    OnDemand(Flavor),
    StartConnection(Flavor),
    Pong,
    Ping,
    Connect,
    Healthz,
    Metrics,
    Chat(Flavor),
    ChatMessages,
    ChatStream,
    /// `/feeds`: the list.
    FeedList(Flavor),
    /// `/feeds/NAME`: its page, and (htmx 2's path only) `POST` to publish.
    Feed(Flavor, Box<str>),
    /// `/feeds/NAME/stream`.
    FeedStream(Box<str>),
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
    /// A page that is also published to.
    GetHeadPost,
    /// `OPTIONS` only, asking what the server implements.
    Options,
}

impl Allow {
    pub fn permits(self, method: &Method) -> bool {
        match self {
            Allow::GetHead => matches!(method, Method::Get | Method::Head | Method::Options),
            Allow::Post => matches!(method, Method::Post | Method::Options),
            Allow::GetHeadPost => !matches!(method, Method::Other(_)),
            Allow::Options => *method == Method::Options,
        }
    }

    /// The `Allow` header's value: for `*`, every method the server implements.
    pub fn header(self) -> &'static str {
        match self {
            Allow::GetHead => "GET, HEAD, OPTIONS",
            Allow::Post => "OPTIONS, POST",
            Allow::GetHeadPost | Allow::Options => "GET, HEAD, OPTIONS, POST",
        }
    }
}

/// How a reply may be cached (RFC 9111 §5.2.2): pages and fragments are checked with the
/// server before each use, health and metrics never stored, assets kept (see `asset_reply`).
const REVALIDATE: &str = "no-cache";
const NEVER_STORE: &str = "no-store";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

impl Route {
    /// The route at `path`, matched exactly (a feed's name is matched by its rule).
    pub fn of(path: &str) -> Route {
        match path {
            "/" => Route::LiveBox(Flavor::Htmx2),
            "/on-demand" => Route::OnDemand(Flavor::Htmx2),
            "/start-connection" => Route::StartConnection(Flavor::Htmx2),
            "/htmx4/" | "/htmx4" => Route::LiveBox(Flavor::Htmx4),
            "/htmx4/on-demand" => Route::OnDemand(Flavor::Htmx4),
            "/htmx4/start-connection" => Route::StartConnection(Flavor::Htmx4),
            "/htmx4/chat" => Route::Chat(Flavor::Htmx4),
            "/pong" => Route::Pong,
            "/ping" => Route::Ping,
            "/connect" => Route::Connect,
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            "/chat" => Route::Chat(Flavor::Htmx2),
            "/chat/messages" => Route::ChatMessages,
            "/chat/stream" => Route::ChatStream,
            "/feeds" => Route::FeedList(Flavor::Htmx2),
            "/htmx4/feeds" => Route::FeedList(Flavor::Htmx4),
            "*" => Route::Server,
            path => feed(path)
                .or_else(|| assets::find(path).map(Route::Asset))
                .unwrap_or(Route::Unknown),
        }
    }

    /// The methods the route takes; `None` for a path that is no route.
    pub fn allow(&self) -> Option<Allow> {
        match self {
            Route::LiveBox(_)
            | Route::OnDemand(_)
            | Route::Connect
            | Route::Healthz
            | Route::Metrics
            | Route::Chat(_)
            | Route::ChatStream
            | Route::FeedList(_)
            | Route::Feed(Flavor::Htmx4, _)
            | Route::FeedStream(_)
            | Route::Asset(_) => Some(Allow::GetHead),
            Route::Feed(Flavor::Htmx2, _) => Some(Allow::GetHeadPost),
            Route::StartConnection(_) | Route::Pong | Route::Ping | Route::ChatMessages => {
                Some(Allow::Post)
            }
            Route::Server => Some(Allow::Options),
            Route::Unknown => None,
        }
    }

    /// The route as a metrics label: a fixed set, whatever clients send.
    pub fn label(&self) -> &'static str {
        match self {
            Route::LiveBox(Flavor::Htmx2) => "/",
            Route::OnDemand(Flavor::Htmx2) => "/on-demand",
            Route::StartConnection(Flavor::Htmx2) => "/start-connection",
            Route::LiveBox(Flavor::Htmx4) => "/htmx4/",
            Route::OnDemand(Flavor::Htmx4) => "/htmx4/on-demand",
            Route::StartConnection(Flavor::Htmx4) => "/htmx4/start-connection",
            Route::Chat(Flavor::Htmx4) => "/htmx4/chat",
            Route::Pong => "/pong",
            Route::Ping => "/ping",
            Route::Connect => "/connect",
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::Chat(Flavor::Htmx2) => "/chat",
            Route::ChatMessages => "/chat/messages",
            Route::ChatStream => "/chat/stream",
            Route::FeedList(Flavor::Htmx2) => "/feeds",
            Route::FeedList(Flavor::Htmx4) => "/htmx4/feeds",
            Route::Feed(Flavor::Htmx2, _) => "/feeds/NAME",
            Route::Feed(Flavor::Htmx4, _) => "/htmx4/feeds/NAME",
            Route::FeedStream(_) => "/feeds/NAME/stream",
            Route::Asset(_) => "/assets",
            Route::Server | Route::Unknown => "other",
        }
    }
}

/// The application behind the HTTP layer.
impl Handler for App {
    type Route = Route;

    fn route(&self, request: &Request) -> Route {
        Route::of(&request.path)
    }

    fn handle(&self, request: &Request, route: &Route) -> Reply {
        handle(request, route, self)
    }

    fn label(&self, route: &Route) -> &'static str {
        route.label()
    }

    fn refused(&self, request: &Request, route: &Route, status: u16) {
        if status == 413 && publishes(request, route) {
            self.feeds.count_refusal("too_large");
        }
    }

    /// A publish waits for Redis when the feeds are shared through it (up to seconds when it
    /// stalls).
    #[cfg(feature = "redis")]
    fn may_wait(&self, request: &Request, route: &Route) -> bool {
        publishes(request, route) && self.feeds.shared_through_redis()
    }

    fn body_limit(&self, request: &Request, route: &Route) -> usize {
        if publishes(request, route) {
            MAX_BODY
        } else {
            SMALL_BODY
        }
    }

    fn busy(&self) -> Reply {
        Reply::html(503, views::busy_fragment())
    }
}

/// Answers one request for `route`.
pub fn handle(request: &Request, route: &Route, app: &App) -> Reply {
    let mut reply = answer(route, request, app);
    if route.streams() {
        // Other sites' pages may read the streams (`--cors`); our own pages' policy is as it is.
        for (name, value) in app.cors.headers(request.header("Origin")) {
            reply = reply.with_header(name, value);
        }
        if request.method == Method::Options
            && let Some(allowed) = app
                .cors
                .allow_headers(request.header("Access-Control-Request-Headers"))
        {
            reply = reply.with_header("Access-Control-Allow-Headers", allowed);
        }
    }
    reply.for_route(route.label())
}

impl Route {
    /// Whether the route is an event stream, which other sites' pages may be let read.
    fn streams(&self) -> bool {
        matches!(
            self,
            Route::Connect | Route::ChatStream | Route::FeedStream(_)
        )
    }
}

fn answer(route: &Route, request: &Request, app: &App) -> Reply {
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
    match *route {
        Route::LiveBox(flavor) => page(views::auto_connect_page(flavor)),
        Route::OnDemand(flavor) => page(views::on_demand_page(flavor)),
        Route::StartConnection(flavor) => page(views::live_box(flavor)),
        Route::Pong => page(views::ping_button()),
        Route::Ping => page(views::pong_button()),
        Route::Connect => app.counter.stream(request),
        Route::Healthz => {
            Reply::text(200, app.feeds.health()).with_header("Cache-Control", NEVER_STORE)
        }
        Route::Metrics => Reply::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            (app.metrics.render() + &app.feeds.render_metrics()).into_bytes(),
        )
        .with_header("Cache-Control", NEVER_STORE),
        Route::Chat(flavor) => page(views::chat_page(flavor)),
        Route::ChatMessages => publish(app, CHAT, request),
        Route::ChatStream => app.feeds.stream(CHAT, request),
        Route::FeedList(flavor) => page(views::feed_list_page(
            flavor,
            &app.feeds.list(),
            app.feeds.max_feeds(),
        )),
        Route::Feed(_, ref name) if request.method == Method::Post => match &app.token {
            Some(token) if !token.admits(request.header("Authorization")) => {
                match app.feeds.token_refused(request) {
                    Some(limited) => limited.with_header("Cache-Control", NEVER_STORE),
                    None => {
                        app.feeds.count_refusal("unauthorized");
                        unauthorized()
                    }
                }
            }
            _ => publish(app, name, request),
        },
        Route::Feed(flavor, ref name) if name.as_ref() == CHAT => page(views::chat_page(flavor)),
        Route::Feed(flavor, ref name) => {
            // Shown escaped, as the client sent it: nothing it writes becomes markup.
            let origin = request.header("Host").map(|host| format!("http://{host}"));
            page(views::feed_page(flavor, name, origin.as_deref()))
        }
        Route::FeedStream(ref name) => app.feeds.stream(name, request),
        Route::Asset(asset) => asset_reply(request, asset),
        // Only OPTIONS reaches here, answered above.
        Route::Server => options(Allow::Options),
        Route::Unknown => Reply::html(404, views::not_found_page(&request.path))
            .with_header("Cache-Control", REVALIDATE),
    }
}

/// `/feeds/NAME` and `/htmx4/feeds/NAME` (the page), `/feeds/NAME/stream`, for a valid name.
fn feed(path: &str) -> Option<Route> {
    let (flavor, rest) = match path.strip_prefix("/htmx4") {
        Some(rest) => (Flavor::Htmx4, rest),
        None => (Flavor::Htmx2, path),
    };
    let rest = rest.strip_prefix("/feeds/")?;
    let (name, stream) = match rest.split_once('/') {
        None => (rest, false),
        Some((name, "stream")) if flavor == Flavor::Htmx2 => (name, true),
        Some(_) => return None,
    };
    if !valid_name(name) {
        return None;
    }
    let name = Box::from(name);
    Some(if stream {
        Route::FeedStream(name)
    } else {
        Route::Feed(flavor, name)
    })
}

/// Whether the request publishes a message (and so may have a message's body).
fn publishes(request: &Request, route: &Route) -> bool {
    request.method == Method::Post
        && matches!(route, Route::ChatMessages | Route::Feed(Flavor::Htmx2, _))
}

fn publish(app: &App, name: &str, request: &Request) -> Reply {
    app.feeds
        .publish_request(name, request)
        .with_header("Cache-Control", NEVER_STORE)
}

/// RFC 6750 §3: the token is missing or wrong (the two are not told apart).
fn unauthorized() -> Reply {
    Reply::text(
        401,
        "publishing to a feed needs its token: Authorization: Bearer TOKEN\n",
    )
    .with_header("WWW-Authenticate", "Bearer")
    .with_header("Cache-Control", NEVER_STORE)
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
    let chosen = asset.choose(request.header("Accept-Encoding"));
    let fresh = request
        .header("If-None-Match")
        .is_some_and(|tags| chosen.not_modified(tags));
    let mut reply = if fresh {
        Reply::new(304, asset.content_type, &[][..])
    } else {
        Reply::new(200, asset.content_type, chosen.body)
    };
    if let Some(coding) = chosen.encoding.content_encoding() {
        reply = reply.with_header("Content-Encoding", coding);
    }
    if asset.gzip.is_some() {
        // Caches must keep the gzip and identity forms apart.
        reply = reply.with_header("Vary", "Accept-Encoding");
    }
    // A 304 carries the validators and the caching of the 200 it stands for (RFC 9110 §15.4.5).
    reply
        .with_header("ETag", chosen.etag)
        .with_header("Cache-Control", IMMUTABLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Counter;
    use crate::app::access::Cors;
    use crate::app::chat::history::Bounds;
    use crate::app::chat::message::Limits;
    use crate::app::chat::{Feeds, Room, Settings};
    use crate::log::Log;
    use crate::metrics::Metrics;
    use crate::tiny::Body;
    use std::sync::Arc;
    use std::time::Duration;

    fn app() -> App {
        app_with(64)
    }

    fn app_with(max_feeds: usize) -> App {
        let room = Room::new(Bounds::default(), std::time::SystemTime::now());
        let settings = Settings {
            max_feeds,
            bounds: Bounds::default(),
            limits: Limits::default(),
            publish_limit: 0,
            retry: Duration::from_secs(3),
            log: Log { quiet: true },
        };
        let feeds = Feeds::start(vec![(CHAT.into(), room)], None, settings);
        App {
            counter: Counter {
                interval: Duration::from_secs(1),
                retry: Duration::from_secs(3),
                panic_at_event: None,
            },
            feeds: Arc::new(feeds.unwrap()),
            token: None,
            cors: Cors::default(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Routes and answers `request`, as the layer does.
    fn handle(request: &Request, app: &App) -> Reply {
        super::handle(request, &Route::of(&request.path), app)
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
            ("/htmx4/", Some(Allow::GetHead), "/htmx4/"),
            ("/htmx4/on-demand", Some(Allow::GetHead), "/htmx4/on-demand"),
            (
                "/htmx4/start-connection",
                Some(Allow::Post),
                "/htmx4/start-connection",
            ),
            ("/htmx4/chat", Some(Allow::GetHead), "/htmx4/chat"),
            ("/assets/htmx4.min.js", Some(Allow::GetHead), "/assets"),
            ("/chat/messages", Some(Allow::Post), "/chat/messages"),
            ("/chat/stream", Some(Allow::GetHead), "/chat/stream"),
            ("/assets/htmx.min.js", Some(Allow::GetHead), "/assets"),
            ("/assets/app.css", Some(Allow::GetHead), "/assets"),
            ("/feeds", Some(Allow::GetHead), "/feeds"),
            ("/htmx4/feeds", Some(Allow::GetHead), "/htmx4/feeds"),
            ("/feeds/news", Some(Allow::GetHeadPost), "/feeds/NAME"),
            ("/feeds/chat", Some(Allow::GetHeadPost), "/feeds/NAME"),
            (
                "/htmx4/feeds/n-1",
                Some(Allow::GetHead),
                "/htmx4/feeds/NAME",
            ),
            (
                "/feeds/news/stream",
                Some(Allow::GetHead),
                "/feeds/NAME/stream",
            ),
            ("/feeds/", None, "other"),
            ("/feeds/News", None, "other"),
            ("/feeds/-news", None, "other"),
            ("/feeds/news/", None, "other"),
            ("/feeds/news/other", None, "other"),
            ("/feeds/a/b/stream", None, "other"),
            ("/htmx4/feeds/news/stream", None, "other"),
            ("/feeds//stream", None, "other"),
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
        let metrics = app.feeds.render_metrics();
        assert!(
            metrics.contains("feed_messages_published_total{feed=\"chat\"} 1\n"),
            "{metrics}"
        );
        assert!(metrics.contains("feed_publishes_refused_total{reason=\"empty\"} 1\n"));
        assert!(metrics.contains("feed_messages_held{feed=\"chat\"} 1\n"));
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
        assert_eq!(fresh.header("Cache-Control"), Some(IMMUTABLE));
        let stale = get("GET", "/assets/app.css");
        assert_eq!(stale.status, 200);
        assert!(!stale.bytes().is_empty());
    }

    fn publish_to(app: &App, path: &str, text: &str) -> Reply {
        let mut post = Request::fake("POST", path, &[("Content-Type", "text/plain")]);
        post.body = text.as_bytes().to_vec();
        handle(&post, app)
    }

    #[test]
    fn a_feed_starts_with_its_first_message_and_no_more_than_max_feeds_exist() {
        let app = app_with(2);
        let page = handle(&Request::fake("GET", "/feeds/news", &[]), &app);
        assert_eq!(page.status, 200, "a page for a feed to come");
        let stream = handle(&Request::fake("GET", "/feeds/later/stream", &[]), &app);
        assert!(matches!(stream.body, Body::Events(_)));
        assert_eq!(app.feeds.list().len(), 1, "neither creates a feed");
        let first = publish_to(&app, "/feeds/news", "hello");
        assert_eq!((first.status, first.label), (201, "/feeds/NAME"));
        assert_eq!(first.header("Cache-Control"), Some(NEVER_STORE));
        assert_eq!(publish_to(&app, "/feeds/news", "again").status, 201);
        assert_eq!(publish_to(&app, "/feeds/chat", "via the feed").status, 201);
        let refused = publish_to(&app, "/feeds/third", "one too many");
        assert_eq!(refused.status, 507);
        assert_eq!(
            String::from_utf8_lossy(refused.bytes()),
            "this server holds at most 2 feeds; publish to one that exists\n"
        );
        assert_eq!(
            publish_to(&app, "/feeds/third", " ").status,
            422,
            "checked first"
        );
        let held: Vec<_> = app
            .feeds
            .list()
            .into_iter()
            .map(|(n, h)| (n.to_string(), h))
            .collect();
        assert_eq!(held, [("chat".to_owned(), 1), ("news".to_owned(), 2)]);
        let metrics = app.feeds.render_metrics();
        assert!(
            metrics.contains("feed_messages_held{feed=\"news\"} 2\n"),
            "{metrics}"
        );
        assert!(metrics.contains("feed_publishes_refused_total{reason=\"too_many_feeds\"} 1\n"));
        assert!(!metrics.contains("third") && !metrics.contains("later"));
    }

    #[test]
    fn the_chats_feed_paths_are_the_chats() {
        let app = app();
        let page = handle(&Request::fake("GET", "/feeds/chat", &[]), &app);
        assert!(String::from_utf8_lossy(page.bytes()).contains(r#"id="chat-form""#));
        let htmx4 = handle(&Request::fake("GET", "/htmx4/feeds/chat", &[]), &app);
        assert!(String::from_utf8_lossy(htmx4.bytes()).contains("hx-sse:connect=\"/chat/stream\""));
        let post = handle(&Request::fake("POST", "/htmx4/feeds/chat", &[]), &app);
        assert_eq!(post.status, 405, "htmx 4's path is a page only");
        let list = handle(&Request::fake("GET", "/feeds", &[]), &app);
        assert!(
            String::from_utf8_lossy(list.bytes()).contains(r#"<a href="/feeds/chat">chat</a>"#)
        );
    }
}
