//! Every page and fragment the server sends, as functions returning [`Markup`].
//!
//! The box and the event payload are each built in one place: the auto-connect page, the
//! `/start-connection` fragment and every streamed event share them, so the first render and the
//! updates cannot drift apart. maud escapes every value spliced in with `( )`.

use maud::{DOCTYPE, Markup, html};

use super::assets;

/// The article's first page: the box connects as soon as the page loads.
pub fn auto_connect_page() -> Markup {
    layout(
        "Live box",
        html! {
            p { "Here." }
            (live_box())
            (pong_button())
            p.nav {
                "Connect on demand instead: " a href="/on-demand" { "/on-demand" }
                " · the chatroom: " a href="/chat" { "/chat" }
            }
        },
    )
}

/// The article's second page: the box arrives, and connects, when Connect is clicked.
pub fn on_demand_page() -> Markup {
    layout(
        "Live box on demand",
        html! {
            p { "Here." }
            (connect_button())
            (pong_button())
            p.nav { "Connect on load instead: " a href="/" { "/" } }
        },
    )
}

/// The box that holds the live stream: htmx's SSE extension opens `/connect` and swaps each
/// unnamed event ("message") into it.
pub fn live_box() -> Markup {
    html! {
        div #live-box hx-ext="sse" sse-connect="/connect" sse-swap="message" {
            "Contents of this box will be updated in real time with every event from the server."
        }
    }
}

/// The payload of event `n`.
pub fn event_html(n: u64) -> Markup {
    html! { p { "This is " (n) "." } }
}

pub fn connect_button() -> Markup {
    html! { button hx-post="/start-connection" hx-swap="outerHTML" { "Connect" } }
}

pub fn pong_button() -> Markup {
    html! { button hx-post="/pong" hx-swap="outerHTML" { "Pong" } }
}

pub fn ping_button() -> Markup {
    html! { button hx-post="/ping" hx-swap="outerHTML" { "Ping" } }
}

/// The chatroom: the message list fills from `/chat/stream` (recent history first, then every
/// new message, appended), and the form publishes with htmx and is replaced by a fresh one.
pub fn chat_page() -> Markup {
    layout(
        "Chat",
        html! {
            div #chat-notice {}
            div #chat-log hx-ext="sse" sse-connect="/chat/stream" sse-swap="message"
                hx-swap="beforeend" {}
            (chat_form("", None))
            p.nav { "The live box: " a href="/" { "/" } }
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

/// One message as the list shows it. Its id makes it findable, once.
pub fn chat_message(id: u64, name: &str, text: &str) -> Markup {
    html! {
        article id=(format!("msg-{id}")) .msg {
            b.name { (name) } " " span.text { (text) }
        }
    }
}

/// Put before the first message a stream sends after it (re)connects without a known position:
/// htmx swaps it out of band and empties the list, so that a re-sent history replaces what the
/// page shows instead of adding to it.
pub fn chat_reset() -> Markup {
    html! { div #chat-log hx-swap-oob="innerHTML" {} }
}

/// Sent before the history when a client comes back after messages it never got were dropped.
pub fn chat_missed() -> Markup {
    html! {
        div #chat-notice hx-swap-oob="true" {
            p.missed { "Some messages were missed while you were away; these are the ones still held." }
        }
    }
}

/// Served for any path the server does not know. The path is shown, escaped.
pub fn not_found_page(path: &str) -> Markup {
    layout(
        "Not found",
        html! {
            p { "Nothing is served at " code { (path) } "." }
            p { a href="/" { "Back to the live box" } }
        },
    )
}

/// A short error page for statuses other than 404 (405, 503, ...).
pub fn error_page(title: &str, detail: &str) -> Markup {
    layout(title, html! { p { (detail) } })
}

/// htmx would otherwise add an inline <style>, which the Content-Security-Policy forbids.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"4..","swap":true,"error":false},{"code":"...","swap":false,"error":true}]}"#;

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // 4xx answers are swapped (the chat form shows why a message was refused),
                // not treated as errors.
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · sse-htmx" }
                link rel="icon" href=(assets::FAVICON.url());
                link rel="stylesheet" href=(assets::APP_CSS.url());
                script src=(assets::HTMX.url()) {}
                script src=(assets::HTMX_SSE.url()) {}
            }
            body {
                main {
                    h1 { (title) }
                    (body)
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
        let html = live_box().into_string();
        assert!(html.contains(r#"hx-ext="sse" sse-connect="/connect" sse-swap="message""#));
    }

    #[test]
    fn pages_load_scripts_from_the_server_only() {
        for page in [auto_connect_page(), on_demand_page()] {
            let html = page.into_string();
            assert!(html.contains(r#"src="/assets/htmx.min.js?v="#));
            assert!(html.contains(r#"src="/assets/sse.min.js?v="#));
            assert!(!html.contains("http://") && !html.contains("https://"));
        }
    }

    #[test]
    fn a_chat_message_escapes_name_and_text() {
        let html = chat_message(7, "<b>x</b>", "<img src=x onerror=alert(1)>").into_string();
        assert_eq!(
            html,
            "<article class=\"msg\" id=\"msg-7\"><b class=\"name\">&lt;b&gt;x&lt;/b&gt;</b> \
             <span class=\"text\">&lt;img src=x onerror=alert(1)&gt;</span></article>"
        );
    }

    #[test]
    fn the_chat_page_connects_its_list_and_posts_its_form() {
        let html = chat_page().into_string();
        assert!(html.contains(
            r#"<div id="chat-log" hx-ext="sse" sse-connect="/chat/stream" sse-swap="message" hx-swap="beforeend">"#
        ));
        assert!(
            html.contains(r#"<form id="chat-form" hx-post="/chat/messages" hx-swap="outerHTML">"#)
        );
        assert!(html.contains(r#"name="text""#) && html.contains(r#"name="name""#));
    }

    #[test]
    fn not_found_escapes_the_path() {
        let html = not_found_page("/<script>").into_string();
        assert!(html.contains("/&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
