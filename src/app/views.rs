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
            p.nav { "Connect on demand instead: " a href="/on-demand" { "/on-demand" } }
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

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx would otherwise add an inline <style>, which the Content-Security-Policy
                // forbids.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false}"#;
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
    fn not_found_escapes_the_path() {
        let html = not_found_page("/<script>").into_string();
        assert!(html.contains("/&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
