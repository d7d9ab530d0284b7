//! Every route the server has, in one `match`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tiny_http::{Method, Request, Response};

use crate::assets::{self, Asset};
use crate::http::{self, Body};
use crate::screen;
use crate::server::App;
use crate::stream;
use crate::views;

/// Answers one request: every route the server has is in this function and [`response`].
pub fn handle(request: Request, app: &Arc<App>, received: Instant) {
    let method = request.method().clone();
    let path = path_of(request.url()).to_owned();
    let route = route_label(&path);
    if let Some(peer) = request.remote_addr() {
        app.connections.request_started(*peer);
    }
    let request = match screen::screen(request, app) {
        Ok(request) => request,
        Err(status) => {
            app.metrics.count_request(route, status);
            app.log
                .request(&method, &path, status, 0, received.elapsed());
            return;
        }
    };
    let (status, bytes) = match (&method, path.as_str()) {
        (Method::Get, "/connect") => match stream::open(request, app, received) {
            Some(refused) => (refused, 0),
            None => {
                // The stream logs its request when it ends.
                app.metrics.count_request(route, 200);
                return;
            }
        },
        (Method::Head, "/connect") => (stream::head(request), 0),
        _ => {
            let response = response(&request, &method, &path, app);
            let status = response.status_code().0;
            let bytes = match method {
                Method::Head => 0,
                _ => response.data_length().unwrap_or(0),
            };
            // A failed write means the client left before the answer; there is no one to tell.
            let _ = request.respond(response);
            (status, bytes)
        }
    };
    app.metrics.count_request(route, status);
    app.log
        .request(&method, &path, status, bytes, received.elapsed());
}

/// The answer to every request but the stream's.
fn response(request: &Request, method: &Method, path: &str, app: &App) -> Response<Body> {
    match (method, path) {
        (Method::Get | Method::Head, "/") => http::html(200, views::auto_connect_page()),
        (Method::Get | Method::Head, "/on-demand") => http::html(200, views::on_demand_page()),
        (Method::Post, "/pong") => http::html(200, views::ping_button()),
        (Method::Post, "/ping") => http::html(200, views::pong_button()),
        (Method::Post, "/start-connection") => http::html(200, views::live_box()),
        (Method::Get | Method::Head, "/healthz") => http::text(200, "ok\n"),
        (Method::Get | Method::Head, "/metrics") => {
            let live = app.live_streams.load(Ordering::SeqCst);
            let body = app.metrics.render(live).into_bytes();
            http::response(200, "text/plain; version=0.0.4; charset=utf-8", body)
        }
        (Method::Get | Method::Head, path) if assets::find(path).is_some() => {
            asset(request, assets::find(path).expect("matched above"))
        }
        (_, path) => match allowed_methods(path) {
            Some(allow) => method_not_allowed(allow),
            None => http::html(404, views::not_found_page(path)),
        },
    }
}

/// The path without the query string. It is matched exactly, never decoded or joined to a
/// directory, so `..` or `%2e` can reach nothing but the 404 page.
fn path_of(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _query)| path)
}

/// The route a path belongs to, as a metrics label: a fixed set, whatever clients send.
fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/on-demand" => "/on-demand",
        "/connect" => "/connect",
        "/pong" => "/pong",
        "/ping" => "/ping",
        "/start-connection" => "/start-connection",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        _ if assets::find(path).is_some() => "/assets",
        _ => "other",
    }
}

/// The methods a known path answers, for 405's `Allow`; `None` for an unknown path.
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/" | "/on-demand" | "/connect" | "/healthz" | "/metrics" => Some("GET, HEAD"),
        "/pong" | "/ping" | "/start-connection" => Some("POST"),
        _ if assets::find(path).is_some() => Some("GET, HEAD"),
        _ => None,
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    http::html(
        405,
        views::error_page(
            "Method not allowed",
            &format!("This path answers {allow} only."),
        ),
    )
    .with_header(http::header("Allow", allow))
}

fn asset(request: &Request, asset: &Asset) -> Response<Body> {
    let etag = asset.etag();
    let fresh = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("If-None-Match"))
        .is_some_and(|h| assets::etag_matches(h.value.as_str(), &etag));
    let response = if fresh {
        http::response(304, asset.content_type, Vec::new())
    } else {
        http::response(200, asset.content_type, asset.body.to_vec())
    };
    response
        .with_header(http::header("ETag", &etag))
        .with_header(http::header(
            "Cache-Control",
            "public, max-age=31536000, immutable",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_not_part_of_the_path() {
        assert_eq!(path_of("/assets/htmx.min.js?v=1"), "/assets/htmx.min.js");
        assert_eq!(path_of("/"), "/");
    }

    #[test]
    fn known_paths_list_their_methods() {
        assert_eq!(allowed_methods("/pong"), Some("POST"));
        assert_eq!(allowed_methods("/connect"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/nope"), None);
    }
}
