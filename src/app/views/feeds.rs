//! The feeds' pages: one feed, live, with the markup to show it elsewhere; and the list of feeds.

use maud::{Markup, PreEscaped, html};

use super::{Flavor, RETRY_FIRST_CONNECT, layout, scripts};

/// What a feed's page shows, filled from the feed's stream: the missed notice, the newest
/// message large, and the recent ones under it, in the chat's scrolling box (which keeps the
/// newest in sight).
pub fn feed_live(flavor: Flavor, name: &str) -> Markup {
    let stream = format!("/feeds/{name}/stream");
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
pub fn feed_page(flavor: Flavor, name: &str) -> Markup {
    let live = feed_live(flavor, name).into_string();
    let copy = scripts(flavor).into_string() + "\n" + &live;
    let path = format!("/feeds/{name}");
    layout(
        flavor,
        &format!("Feed {name}"),
        &path,
        html! {
            (PreEscaped(&live))
            h2 { "On your own page" }
            p { "The same live view, with the scripts it needs (served here too):" }
            pre.copy { code { (copy) } }
            p { "Publish to it: " code { "curl --data-urlencode text=hello http://HOST" (path) } }
            p.nav {
                "All the feeds: " a href=(flavor.page("/feeds")) { "feeds" }
                " · the chatroom: " a href=(flavor.page("/chat")) { "chat" }
            }
        },
    )
}

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
        let html = feed_page(Flavor::Htmx2, "news").into_string();
        assert!(html.contains(
            r#"<div id="feed-log" hx-ext="sse" sse-connect="/feeds/news/stream" sse-swap="message" hx-swap="beforeend">"#
        ));
        assert!(html.contains(r#"<div id="feed-newest">"#) && html.contains("feed-notice"));
        let html = feed_page(Flavor::Htmx4, "news").into_string();
        assert!(html.contains(
            r#"<div id="feed-log" hx-sse:connect="/feeds/news/stream" hx-swap="beforeend""#
        ));
        assert!(html.contains(r#"href="/feeds/news""#), "the other flavor");
    }

    #[test]
    fn the_markup_to_copy_is_the_pages_own_escaped() {
        let page = feed_page(Flavor::Htmx2, "news").into_string();
        let live = feed_live(Flavor::Htmx2, "news").into_string();
        let shown = live
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let shown = shown.replace('"', "&quot;");
        assert!(page.contains(&live));
        assert!(page.contains(&shown), "{page}");
        assert!(page.contains("&lt;script src=&quot;/assets/htmx.min.js?v="));
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
