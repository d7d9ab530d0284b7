//! The chat page reads like a chat, 400 and 1000 px wide: after 30 messages the newest one is in
//! view in the list's box, and the next one too as it arrives; a reader who scrolled up to older
//! messages is not moved when one arrives; a 300-character word wraps, so nothing scrolls
//! sideways; each message says when it was published, in a `<time datetime>` that parses.

use std::time::Duration;

use headless_chrome::Browser;
use headless_chrome::browser::tab::Tab;
use headless_chrome::protocol::cdp::Emulation;

use super::common::browser::{Flavor, assert_clean, take};
use super::{chat_server, close, eval_string, messages, open_chat, post_raw, wait_until};

/// Within this a message posted shows; generous, the two-page part holds the one-second bound.
const SHOWN: Duration = Duration::from_secs(3);

pub fn the_list_reads_like_a_chat(browser: &Browser, flavor: Flavor) {
    let server = chat_server(None);
    let base = format!("http://{}", server.addr);
    // Half the messages are history when the page opens, half arrive while it is open.
    post_raw(server.addr, "long", &"w".repeat(300));
    post_raw(server.addr, "poet", "first line\nsecond line\nthird line");
    for n in 3..=15 {
        post_raw(server.addr, "bot", &format!("message {n}"));
    }
    let (tab, tab_watch) = open_chat(browser, &base, flavor);
    set_width(&tab, 400);
    wait_until(&tab, SHOWN, "the history", |tab| messages(tab).len() == 15);
    let mut newest = String::new();
    for n in 16..=30 {
        newest = post_raw(server.addr, "bot", &format!("message {n}"));
    }
    wait_shown(&tab, &newest);
    assert_eq!(messages(&tab).len(), 30);
    let at_400 = format!("{flavor:?} at 400 px");
    assert_in_view(&tab, &newest, &at_400);
    assert_no_sideways_scroll(&tab, &at_400);
    assert_times(&tab, &at_400);

    // A reader who scrolled up to the oldest message keeps it where it is.
    // (Within a pixel: the scroll position may be kept to a fraction of one.)
    let before = eval_string(&tab, &format!("{SCROLL_TO_OLDEST}; {OLDEST_TOP}"));
    let arrived = post_raw(server.addr, "bot", "while scrolled up");
    wait_shown(&tab, &arrived);
    let after = after_two_frames(&tab, OLDEST_TOP);
    let top = |at: &str| -> f64 { at.parse().unwrap_or_else(|_| panic!("a position: {at}")) };
    assert!(
        (top(&after) - top(&before)).abs() < 1.0,
        "{at_400}: the oldest message moved from {before} to {after} px when one arrived"
    );

    // Back at the bottom, wider: the next message shows in view.
    set_width(&tab, 1000);
    eval_string(&tab, SCROLL_TO_NEWEST);
    let last = post_raw(server.addr, "bot", "at 1000 px");
    wait_shown(&tab, &last);
    let at_1000 = format!("{flavor:?} at 1000 px");
    assert_in_view(&tab, &last, &at_1000);
    assert_no_sideways_scroll(&tab, &at_1000);

    assert_clean(&format!("{flavor:?}, layout"), &take(&tab_watch), &base);
    close(tab);
}

/// Scrolls the list's box to its oldest message; evaluates to nothing.
const SCROLL_TO_OLDEST: &str = "(() => { const box = document.querySelector('.chat-scroll'); \
     box.scrollTop = -box.scrollHeight; box.scrollTop = box.scrollTop; })()";

/// Scrolls the list's box to its newest message (its scroll position counts from the bottom)
/// and evaluates to `''`.
const SCROLL_TO_NEWEST: &str = "(() => { const box = document.querySelector('.chat-scroll'); \
     box.scrollTop = 0; return ''; })()";

/// Where the oldest message is, from the top of the list's box, in CSS pixels.
const OLDEST_TOP: &str = "(() => { const box = document.querySelector('.chat-scroll'); \
     const oldest = document.querySelector('#chat-log article.msg'); \
     return String(oldest.getBoundingClientRect().top - box.getBoundingClientRect().top); })()";

/// The page as it is `width` CSS pixels wide (and 900 high).
fn set_width(tab: &Tab, width: u32) {
    tab.call_method(Emulation::SetDeviceMetricsOverride {
        width,
        height: 900,
        device_scale_factor: 1.0,
        mobile: false,
        scale: None,
        screen_width: None,
        screen_height: None,
        position_x: None,
        position_y: None,
        dont_set_visible_size: None,
        screen_orientation: None,
        viewport: None,
        display_feature: None,
        device_posture: None,
    })
    .expect("Emulation.setDeviceMetricsOverride");
    let inner = eval_string(tab, "String(window.innerWidth)");
    assert_eq!(inner, width.to_string(), "the page's width");
}

fn wait_shown(tab: &Tab, id: &str) {
    let element = format!("msg-{id}");
    wait_until(tab, SHOWN, &format!("message {id}"), |tab| {
        messages(tab).iter().any(|m| m.id == element)
    });
}

/// Evaluates `expression` once the page has drawn two more frames (a scroll position is settled
/// by then).
fn after_two_frames(tab: &Tab, expression: &str) -> String {
    let awaited = format!(
        "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => \
         done({expression}))))"
    );
    let result = tab
        .evaluate(&awaited, true)
        .unwrap_or_else(|e| panic!("{awaited}: {e}"));
    match result.value.as_ref().and_then(|value| value.as_str()) {
        Some(text) => text.to_owned(),
        None => panic!("{awaited}: not a string but {result:?}"),
    }
}

/// The message with `id` is inside the visible part of the list's box (which is, at the bottom,
/// what a reader sees of the list).
fn assert_in_view(tab: &Tab, id: &str, when: &str) {
    let check = format!(
        "(() => {{ const box = document.querySelector('.chat-scroll').getBoundingClientRect(); \
         const msg = document.getElementById('msg-{id}').getBoundingClientRect(); \
         return msg.top >= box.top - 1 && msg.bottom <= box.bottom + 1 ? '' \
           : `message ${{msg.top}}..${{msg.bottom}}, box ${{box.top}}..${{box.bottom}}`; }})()"
    );
    let wrong = after_two_frames(tab, &check);
    assert!(
        wrong.is_empty(),
        "{when}: the newest message is out of view: {wrong}"
    );
}

fn assert_no_sideways_scroll(tab: &Tab, when: &str) {
    let wrong = after_two_frames(
        tab,
        "(() => { const page = document.documentElement; \
         const box = document.querySelector('.chat-scroll'); \
         const wrong = []; \
         if (page.scrollWidth > innerWidth) wrong.push(`page ${page.scrollWidth} > ${innerWidth}`); \
         if (box.scrollWidth > box.clientWidth) \
           wrong.push(`list ${box.scrollWidth} > ${box.clientWidth}`); \
         return wrong.join(', '); })()",
    );
    assert!(wrong.is_empty(), "{when}: scrolls sideways: {wrong}");
}

/// Every message has a `<time datetime>` that parses, within ten minutes of the browser's clock
/// (the server runs on the same machine: a wrong offset would be hours off), shown as `HH:MM`
/// (all were published today, unless the test runs across midnight).
fn assert_times(tab: &Tab, when: &str) {
    let wrong = eval_string(
        tab,
        r"Array.from(document.querySelectorAll('#chat-log article.msg'), a => {
            const time = a.querySelector('time[datetime]');
            if (!time) return `${a.id}: no time`;
            const at = Date.parse(time.getAttribute('datetime'));
            if (!Number.isFinite(at)) return `${a.id}: ${time.outerHTML} does not parse`;
            if (Math.abs(Date.now() - at) > 600000) return `${a.id}: ${time.outerHTML} is not now`;
            if (!/^(\d{4}-\d\d-\d\d )?\d\d:\d\d$/.test(time.textContent))
              return `${a.id}: shown as ${time.textContent}`;
            return '';
        }).filter(Boolean).join('; ')",
    );
    assert!(wrong.is_empty(), "{when}: {wrong}");
}
