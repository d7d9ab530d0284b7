//! The feeds' pages: one feed, live, with the markup to show it elsewhere; and the list of feeds.

use maud::{Markup, html};

use super::{Flavor, RETRY_FIRST_CONNECT, layout, scripts_from};

/// What a feed's page shows, filled from the feed's stream: the missed notice, the newest
/// message large, and the recent ones under it, in the chat's scrolling box (which keeps the
/// newest in sight).
pub fn feed_live(flavor: Flavor, name: &str) -> Markup {
    live_view(flavor, &format!("/feeds/{name}/stream"))
}

/// [`feed_live`] for the stream at `stream`, a path or a whole URL.
fn live_view(flavor: Flavor, stream: &str) -> Markup {
    let log = match flavor {
        Flavor::Htmx2 => html! {
            div #feed-log hx-ext="sse" sse-connect=(stream) sse-swap="message"
                hx-swap="beforeend" {}
        },
        Flavor::Htmx4 => html! {
            div #feed-log hx-sse:connect=(stream) hx-swap="beforeend"
                hx-trigger=(RETRY_FIRST_CONNECT) "hx-status:5xx"="swap:none" {}
        },
    };
    html! {
        div #feed-notice {}
        div #feed-newest { p.waiting { "No message yet: the next one shows here." } }
        div.chat-scroll { (log) }
    }
}

/// Each event of a feed other than the chat: the message for the list (`message`), and its text
/// and name for the large box, swapped out of band.
pub fn feed_newest(message: Markup, name: &str, text: &str) -> Markup {
    html! {
        (message)
        div #feed-newest hx-swap-oob="innerHTML" { p.newest { (text) } p.by { (name) } }
    }
}

/// `GET /feeds/NAME`: the feed live, and the markup to copy into another page. Served for a
/// feed that does not exist yet too: it shows the first message when one is published.
///
/// The markup to copy is for a page served elsewhere, so it names this server by `origin`
/// (`http://` and the `Host` the page was asked for with; `http://HOST` without one), and for
/// htmx 4 it carries the configuration that lets htmx fetch from another origin.
pub fn feed_page(flavor: Flavor, name: &str, origin: Option<&str>) -> Markup {
    let origin = origin.unwrap_or("http://HOST");
    let path = format!("/feeds/{name}");
    let mut copy = String::new();
    if flavor == Flavor::Htmx4 {
        copy.push_str(CORS_CONFIG);
        copy.push('\n');
    }
    copy += &scripts_from(flavor, origin).into_string();
    copy.push('\n');
    copy += &live_view(flavor, &format!("{origin}{path}/stream")).into_string();
    layout(
        flavor,
        &format!("Feed {name}"),
        &path,
        html! {
            (feed_live(flavor, name))
            h2 { "On your own page" }
            p { "For a page served elsewhere (start this server with " code { "--cors" } " and its origin):" }
            pre.copy { code { (copy) } }
            p { "Publish to it: " code { "curl --data-urlencode text=hello " (origin) (path) } }
            p.nav {
                "All the feeds: " a href=(flavor.page("/feeds")) { "feeds" }
                " · the chatroom: " a href=(flavor.page("/chat")) { "chat" }
            }
        },
    )
}

/// What htmx 4 needs to fetch a stream from another origin (it fetches only from its page's own
/// unless told otherwise).
const CORS_CONFIG: &str = r#"<meta name="htmx-config" content='{"mode":"cors"}'>"#;

/// `GET /feeds`: each feed with the messages it holds, linked to its page.
pub fn feed_list_page(flavor: Flavor, feeds: &[(Box<str>, usize)], max: usize) -> Markup {
    layout(
        flavor,
        "Feeds",
        "/feeds",
        html! {
            ul.feeds {
                @for (name, held) in feeds {
                    li {
                        a href=(flavor.page(&format!("/feeds/{name}"))) { (name) }
                        " · " (held) @if *held == 1 { " message" } @else { " messages" }
                    }
                }
            }
            p {
                (feeds.len()) " of at most " (max) " feeds. A message to a new name starts one: "
                code { "curl --data-urlencode text=hello http://HOST/feeds/NAME" }
            }
            p.nav { "The live box: " a href=(flavor.page("/")) { "live box" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_page_connects_its_list_to_its_stream_in_either_flavor() {
        let html = feed_page(Flavor::Htmx2, "news", None).into_string();
        assert!(html.contains(
            r#"<div id="feed-log" hx-ext="sse" sse-connect="/feeds/news/stream" sse-swap="message" hx-swap="beforeend">"#
        ));
        assert!(html.contains(r#"<div id="feed-newest">"#) && html.contains("feed-notice"));
        let html = feed_page(Flavor::Htmx4, "news", None).into_string();
        assert!(html.contains(
            r#"<div id="feed-log" hx-sse:connect="/feeds/news/stream" hx-swap="beforeend""#
        ));
        assert!(html.contains(r#"href="/feeds/news""#), "the other flavor");
    }

    /// What a page shows as text in `<pre>`.
    fn escaped(html: &str) -> String {
        let html = html.replace('&', "&amp;").replace('<', "&lt;");
        html.replace('>', "&gt;").replace('"', "&quot;")
    }

    #[test]
    fn the_markup_to_copy_is_the_pages_own_at_this_servers_address_escaped() {
        let origin = Some("http://192.0.2.2:8000");
        let page = feed_page(Flavor::Htmx2, "news", origin).into_string();
        assert!(page.contains(&feed_live(Flavor::Htmx2, "news").into_string()));
        let copied = live_view(Flavor::Htmx2, "http://192.0.2.2:8000/feeds/news/stream");
        assert!(page.contains(&escaped(&copied.into_string())), "{page}");
        let script = r#"<script src="http://192.0.2.2:8000/assets/htmx.min.js?v="#;
        assert!(page.contains(&escaped(script)), "{page}");
        assert!(
            !page.contains("mode"),
            "htmx 2 needs no configuration: {page}"
        );
        assert!(page.contains("text=hello http://192.0.2.2:8000/feeds/news</code>"));

        let page = feed_page(Flavor::Htmx4, "news", origin).into_string();
        let head = [
            CORS_CONFIG,
            r#"<script src="http://192.0.2.2:8000/assets/htmx4.min.js?v="#,
        ];
        assert!(page.contains(&escaped(&head.join("\n"))), "{page}");
        assert!(page.contains(&escaped(
            r#"hx-sse:connect="http://192.0.2.2:8000/feeds/news/stream""#
        )));

        // Asked for with no Host: a placeholder to fill in.
        let page = feed_page(Flavor::Htmx2, "news", None).into_string();
        assert!(page.contains(&escaped(r#"sse-connect="http://HOST/feeds/news/stream""#)));
    }

    #[test]
    fn an_event_of_a_feed_swaps_the_newest_box_out_of_band_escaped() {
        let html = feed_newest(html! { article { "m" } }, "<b>", "a & b").into_string();
        assert_eq!(
            html,
            "<article>m</article><div id=\"feed-newest\" hx-swap-oob=\"innerHTML\">\
             <p class=\"newest\">a &amp; b</p><p class=\"by\">&lt;b&gt;</p></div>"
        );
    }

    #[test]
    fn the_list_links_each_feed_in_the_pages_flavor() {
        let feeds = [("chat".into(), 1), ("news".into(), 12)];
        let html = feed_list_page(Flavor::Htmx4, &feeds, 64).into_string();
        assert!(html.contains(r#"<a href="/htmx4/feeds/news">news</a> · 12 messages"#));
        assert!(html.contains(r#"<a href="/htmx4/feeds/chat">chat</a> · 1 message<"#));
        assert!(html.contains("2 of at most 64 feeds"));
    }
}
