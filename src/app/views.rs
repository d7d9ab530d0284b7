//! Every page and fragment the server sends, as functions returning [`Markup`].
//!
//! The box and the event payload are each built in one place: the auto-connect page, the
//! `/start-connection` fragment and every streamed event share them, so the first render and the
//! updates cannot drift apart. maud escapes every value spliced in with `( )`.

use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::utc_time::UtcTime;

mod feeds;

pub use feeds::{feed_list_page, feed_newest, feed_page};

/// Which htmx a page is written for. Both are served from the binary; the pages of each link to
/// the other's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// htmx 2 with the `htmx-ext-sse` extension: `hx-ext="sse" sse-connect=…`.
    Htmx2,
    /// htmx 4 with its own SSE extension: `hx-sse:connect=…`.
    Htmx4,
}

impl Flavor {
    /// The path of this flavor's page for `path` (written for htmx 2).
    pub fn page(self, path: &str) -> String {
        match self {
            Flavor::Htmx2 => path.to_owned(),
            Flavor::Htmx4 if path == "/" => "/htmx4/".to_owned(),
            Flavor::Htmx4 => format!("/htmx4{path}"),
        }
    }

    fn other(self) -> Flavor {
        match self {
            Flavor::Htmx2 => Flavor::Htmx4,
            Flavor::Htmx4 => Flavor::Htmx2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavor::Htmx2 => "htmx 2",
            Flavor::Htmx4 => "htmx 4",
        }
    }
}

/// The article's first page: the box connects as soon as the page loads.
pub fn auto_connect_page(flavor: Flavor) -> Markup {
    layout(
        flavor,
        "Live box",
        "/",
        html! {
            p.lead {
                "The server rewrites the box below with every event of its stream (one a second \
                 by default), with no script of this page's own. The Pong button sends an \
                 ordinary request, answered while the stream runs."
            }
            (live_box(flavor))
            (pong_button())
            p.nav {
                "Connect on demand instead: " a href=(flavor.page("/on-demand")) { "on demand" }
                " · the chatroom: " a href=(flavor.page("/chat")) { "chat" }
                " · the feeds: " a href=(flavor.page("/feeds")) { "feeds" }
            }
        },
    )
}

/// The article's second page: the box arrives, and connects, when Connect is clicked.
pub fn on_demand_page(flavor: Flavor) -> Markup {
    layout(
        flavor,
        "Live box on demand",
        "/on-demand",
        html! {
            p.lead {
                "Nothing streams until you click Connect: the box then comes from the server and \
                 opens its event stream. The Pong button sends an ordinary request, answered \
                 either way."
            }
            (connect_button(flavor))
            (pong_button())
            p.nav { "Connect on load instead: " a href=(flavor.page("/")) { "live box" } }
        },
    )
}

/// The box that holds the live stream: it opens `/connect` and each unnamed event replaces its
/// content.
pub fn live_box(flavor: Flavor) -> Markup {
    let text =
        "Contents of this box will be updated in real time with every event from the server.";
    match flavor {
        Flavor::Htmx2 => html! {
            div #live-box hx-ext="sse" sse-connect="/connect" sse-swap="message" { (text) }
        },
        // htmx 4 never retries a first connect that fails: these attributes do (a 503 at
        // capacity is not swapped into the box, and the connect is tried again 2 s later).
        Flavor::Htmx4 => html! {
            div #live-box hx-sse:connect="/connect" hx-trigger=(RETRY_FIRST_CONNECT)
                "hx-status:5xx"="swap:none" { (text) }
        },
    }
}

/// For htmx 4: connect on load, and again 2 s after a failed attempt.
const RETRY_FIRST_CONNECT: &str = "load, htmx:error delay:2s, htmx:response:error delay:2s";

/// The payload of event `n`.
pub fn event_html(n: u64) -> Markup {
    html! { p { "This is " (n) "." } }
}

pub fn connect_button(flavor: Flavor) -> Markup {
    let start = flavor.page("/start-connection");
    html! { button hx-post=(start) hx-swap="outerHTML" { "Connect" } }
}

pub fn pong_button() -> Markup {
    html! { button hx-post="/pong" hx-swap="outerHTML" { "Pong" } }
}

pub fn ping_button() -> Markup {
    html! { button hx-post="/ping" hx-swap="outerHTML" { "Ping" } }
}

/// The chatroom: the message list fills from `/chat/stream` (recent history first, then every
/// new message, appended), and the form publishes with htmx and is replaced by a fresh one.
pub fn chat_page(flavor: Flavor) -> Markup {
    let log = match flavor {
        Flavor::Htmx2 => html! {
            div #chat-log hx-ext="sse" sse-connect="/chat/stream" sse-swap="message"
                hx-swap="beforeend" {}
        },
        Flavor::Htmx4 => html! {
            div #chat-log hx-sse:connect="/chat/stream" hx-swap="beforeend"
                hx-trigger=(RETRY_FIRST_CONNECT) "hx-status:5xx"="swap:none" {}
        },
    };
    layout(
        flavor,
        "Chat",
        "/chat",
        html! {
            p.lead {
                "A message sent here appears at once on every page that has this chat open, \
                 newest at the bottom, with its time in UTC. Scripts can post too: "
                code { "curl --data-urlencode text=hello" } " to " code { "/chat/messages" } "."
            }
            div #chat-notice {}
            // The list is appended to; the box around it keeps the newest message in view.
            div.chat-scroll { (log) }
            (chat_form("", None))
            p.nav { "The live box: " a href=(flavor.page("/")) { "live box" } }
        },
    )
}

/// The publish form, with the name kept and, after a refusal, why.
pub fn chat_form(name: &str, error: Option<&str>) -> Markup {
    html! {
        form #chat-form hx-post="/chat/messages" hx-swap="outerHTML" {
            input name="name" placeholder="name" maxlength="40" value=(name);
            textarea name="text" placeholder="message" required rows="2" {}
            button type="submit" { "Send" }
            @if let Some(error) = error {
                p.error { (error) }
            }
        }
    }
}

/// One message as the list shows it. Its id makes it findable, once. Its time (UTC) is shown
/// short, with the date when `published` is not on the day of `now`: the page has no script to
/// compare it with its own clock, so `now` is when the fragment is sent. The full time is the
/// tooltip.
pub fn chat_message(id: u64, name: &str, text: &str, published: &UtcTime, now: &UtcTime) -> Markup {
    html! {
        article id=(format!("msg-{id}")) .msg {
            time datetime=(published.datetime()) title=(published.title()) {
                (published.shown(now))
            }
            " " b.name { (name) } " " span.text { (text) }
        }
    }
}

/// The first message a stream sends after it (re)connects without a known position: htmx swaps
/// it out of band as the whole content of the list `log` (an element id), so that a re-sent
/// history replaces what the page shows instead of adding to it. (Wrapped rather than put before
/// the message: htmx 2 swaps out of band before the main content, htmx 4 after.)
pub fn chat_reset(log: &str, first: Markup) -> Markup {
    html! { div id=(log) hx-swap-oob="innerHTML" { (first) } }
}

/// Sent, into the element `notice`, before the history when a client comes back after messages
/// it never got were dropped.
pub fn chat_missed(notice: &str) -> Markup {
    html! {
        div id=(notice) hx-swap-oob="true" {
            p.missed { "Some messages were missed while you were away; these are the ones still held." }
        }
    }
}

/// Served for any path the server does not know. The path is shown, escaped.
pub fn not_found_page(path: &str) -> Markup {
    layout(
        Flavor::Htmx2,
        "Not found",
        "",
        html! {
            p { "Nothing is served at " code { (path) } "." }
            p { a href="/" { "Back to the live box" } }
        },
    )
}

/// A short error page for statuses other than 404 (405, 503, ...).
pub fn error_page(title: &str, detail: &str) -> Markup {
    layout(Flavor::Htmx2, title, "", html! { p { (detail) } })
}

/// The answer to a stream request at capacity: short, so that it reads well if a client swaps
/// it into the page.
pub fn busy_fragment() -> Markup {
    html! { p.busy { "The server is busy; this will connect as soon as it can." } }
}

/// htmx would otherwise add an inline <style>, which the Content-Security-Policy forbids. 4xx and
/// 503 answers are swapped: the chat form comes back with why a message was refused, or that
/// the server is busy (htmx 2 swaps no error by itself).
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"4..","swap":true,"error":false},{"code":"503","swap":true,"error":false},{"code":"...","swap":false,"error":true}]}"#;

/// htmx and its SSE extension, in `flavor`.
fn scripts(flavor: Flavor) -> Markup {
    scripts_from(flavor, "")
}

/// The same from `origin` (`http://host:port`, or empty for this page's own).
fn scripts_from(flavor: Flavor, origin: &str) -> Markup {
    let (htmx, sse) = match flavor {
        Flavor::Htmx2 => (&assets::HTMX, &assets::HTMX_SSE),
        Flavor::Htmx4 => (&assets::HTMX4, &assets::HTMX4_SSE),
    };
    html! {
        script src={ (origin) (htmx.url()) } {}
        script src={ (origin) (sse.url()) } {}
    }
}

/// A page: `path` is the page's path in htmx 2 terms, for the link to the other flavor (none for
/// an empty path).
fn layout(flavor: Flavor, title: &str, path: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx 2: 4xx and 503 answers are swapped (the chat form shows why a message
                // was refused), not treated as errors. htmx 4 swaps them by default.
                @if flavor == Flavor::Htmx2 {
                    meta name="htmx-config" content=(HTMX_CONFIG);
                }
                title { (title) " · sse-htmx" }
                link rel="icon" href=(assets::FAVICON.url());
                link rel="stylesheet" href=(assets::APP_CSS.url());
                (scripts(flavor))
            }
            body {
                main {
                    h1 { (title) }
                    (body)
                    @if !path.is_empty() {
                        p.flavor {
                            "This page uses " (flavor.name()) ". The same page in "
                            (flavor.other().name()) ": "
                            a href=(flavor.other().page(path)) { (flavor.other().page(path)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_are_the_articles() {
        assert_eq!(
            pong_button().into_string(),
            r#"<button hx-post="/pong" hx-swap="outerHTML">Pong</button>"#
        );
        assert_eq!(
            ping_button().into_string(),
            r#"<button hx-post="/ping" hx-swap="outerHTML">Ping</button>"#
        );
    }

    #[test]
    fn event_payload() {
        assert_eq!(event_html(42).into_string(), "<p>This is 42.</p>");
    }

    #[test]
    fn live_box_connects_and_swaps_messages() {
        let html = live_box(Flavor::Htmx2).into_string();
        assert!(html.contains(r#"hx-ext="sse" sse-connect="/connect" sse-swap="message""#));
    }

    #[test]
    fn pages_load_scripts_from_the_server_only() {
        for page in [
            auto_connect_page(Flavor::Htmx2),
            on_demand_page(Flavor::Htmx2),
        ] {
            let html = page.into_string();
            assert!(html.contains(r#"src="/assets/htmx.min.js?v="#));
            assert!(html.contains(r#"src="/assets/sse.min.js?v="#));
            assert!(!html.contains("http://") && !html.contains("https://"));
        }
    }

    /// 2026-12-02 14:03:07.250 UTC.
    const AFTERNOON_MS: u64 = 1_796_220_187_250;

    #[test]
    fn a_chat_message_escapes_name_and_text() {
        let at = UtcTime::of_unix_ms(AFTERNOON_MS);
        let html =
            chat_message(7, "<b>x</b>", "<img src=x onerror=alert(1)>", &at, &at).into_string();
        assert_eq!(
            html,
            "<article class=\"msg\" id=\"msg-7\">\
             <time datetime=\"2026-12-02T14:03:07Z\" title=\"2026-12-02 14:03:07 UTC\">14:03</time> \
             <b class=\"name\">&lt;b&gt;x&lt;/b&gt;</b> \
             <span class=\"text\">&lt;img src=x onerror=alert(1)&gt;</span></article>"
        );
    }

    #[test]
    fn a_chat_message_from_another_day_shows_its_date() {
        let published = UtcTime::of_unix_ms(AFTERNOON_MS);
        let next_day = UtcTime::of_unix_ms(AFTERNOON_MS + 86_400_000);
        assert_eq!(
            chat_message(8, "ada", "hi", &published, &next_day).into_string(),
            "<article class=\"msg\" id=\"msg-8\">\
             <time datetime=\"2026-12-02T14:03:07Z\" title=\"2026-12-02 14:03:07 UTC\">\
             2026-12-02 14:03</time> \
             <b class=\"name\">ada</b> <span class=\"text\">hi</span></article>"
        );
    }

    #[test]
    fn no_page_says_just_here() {
        for flavor in [Flavor::Htmx2, Flavor::Htmx4] {
            for page in [
                auto_connect_page(flavor),
                on_demand_page(flavor),
                chat_page(flavor),
            ] {
                let html = page.into_string();
                assert!(!html.contains("<p>Here.</p>"), "{html}");
                assert!(html.contains(r#"<p class="lead">"#), "{html}");
            }
        }
    }

    #[test]
    fn the_chat_list_sits_in_its_scroll_box() {
        for flavor in [Flavor::Htmx2, Flavor::Htmx4] {
            let html = chat_page(flavor).into_string();
            assert!(
                html.contains(r#"<div class="chat-scroll"><div id="chat-log" "#),
                "{html}"
            );
        }
    }

    #[test]
    fn the_chat_page_connects_its_list_and_posts_its_form() {
        let html = chat_page(Flavor::Htmx2).into_string();
        assert!(html.contains(
            r#"<div id="chat-log" hx-ext="sse" sse-connect="/chat/stream" sse-swap="message" hx-swap="beforeend">"#
        ));
        assert!(
            html.contains(r#"<form id="chat-form" hx-post="/chat/messages" hx-swap="outerHTML">"#)
        );
        assert!(html.contains(r#"name="text""#) && html.contains(r#"name="name""#));
    }

    #[test]
    fn htmx_4_pages_load_htmx_4_and_connect_with_its_markup() {
        let page = auto_connect_page(Flavor::Htmx4).into_string();
        assert!(page.contains(r#"src="/assets/htmx4.min.js?v="#));
        assert!(page.contains(r#"src="/assets/hx-sse4.min.js?v="#));
        assert!(!page.contains("/assets/htmx.min.js") && !page.contains("sse-connect"));
        assert!(page.contains(r#"<div id="live-box" hx-sse:connect="/connect" hx-trigger="load, htmx:error delay:2s, htmx:response:error delay:2s" hx-status:5xx="swap:none">"#));
        let on_demand = on_demand_page(Flavor::Htmx4).into_string();
        assert!(on_demand.contains(r#"hx-post="/htmx4/start-connection""#));
        let chat = chat_page(Flavor::Htmx4).into_string();
        assert!(chat.contains(r#"hx-sse:connect="/chat/stream" hx-swap="beforeend""#));
    }

    #[test]
    fn every_page_links_to_its_other_flavor() {
        let pairs = [
            (auto_connect_page(Flavor::Htmx2), r#"href="/htmx4/""#),
            (auto_connect_page(Flavor::Htmx4), r#"href="/""#),
            (on_demand_page(Flavor::Htmx2), r#"href="/htmx4/on-demand""#),
            (on_demand_page(Flavor::Htmx4), r#"href="/on-demand""#),
            (chat_page(Flavor::Htmx2), r#"href="/htmx4/chat""#),
            (chat_page(Flavor::Htmx4), r#"href="/chat""#),
        ];
        for (page, link) in pairs {
            assert!(page.into_string().contains(link), "{link}");
        }
    }

    #[test]
    fn not_found_escapes_the_path() {
        let html = not_found_page("/<script>").into_string();
        assert!(html.contains("/&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
