//! Who may publish, and which other sites' pages may read the streams.
//!
//! ```text
//! --token-file PATH   POST /feeds/NAME needs "Authorization: Bearer <the file's first line>",
//!                     else 401 with "WWW-Authenticate: Bearer" (the chat's form is not asked)
//! --cors ORIGIN       an event stream asked for from ORIGIN answers
//!                     "Access-Control-Allow-Origin: ORIGIN" (with credentials) and "Vary: Origin"
//! ```

use std::io;
use std::path::Path;

/// The publishers' token, if the server has one.
pub struct Token(Box<[u8]>);

impl Token {
    /// The first line of the file at `path` (after a byte-order mark, which some editors
    /// write); an empty one, or one with a character an HTTP header cannot carry, is an error:
    /// a token nobody can send would close the feeds by mistake. The second value is a warning
    /// to log: the file can be read by other users.
    pub fn read(path: &Path) -> io::Result<(Token, Option<String>)> {
        use std::os::unix::fs::PermissionsExt;
        let text = std::fs::read_to_string(path)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let first = text.lines().next().unwrap_or("").trim();
        let refused = |why| Err(io::Error::new(io::ErrorKind::InvalidData, why));
        if first.is_empty() {
            return refused("its first line is empty");
        }
        // tiny_http refuses a header with any other byte (a 400 the client cannot get past).
        if !first.bytes().all(|byte| (b' '..=b'~').contains(&byte)) {
            return refused("its first line has a character that is not printable ASCII");
        }
        let mode = std::fs::metadata(path)?.permissions().mode();
        let warning = (mode & 0o044 != 0).then(|| {
            format!(
                "the token file {} can be read by other users (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            )
        });
        Ok((Token(first.as_bytes().into()), warning))
    }

    /// Whether an `Authorization` header's value is `Bearer` and this token. The token is
    /// compared in time that depends on its length only, not on where a guess goes wrong.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some((scheme, sent)) = authorization.and_then(|value| value.split_once(' ')) else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && same(sent.trim().as_bytes(), &self.0)
    }
}

/// Compares every byte, whatever the first difference (`black_box` keeps the compiler from
/// stopping at one).
fn same(sent: &[u8], token: &[u8]) -> bool {
    if sent.len() != token.len() {
        return false;
    }
    let differ = sent
        .iter()
        .zip(token)
        .fold(0, |differ, (a, b)| std::hint::black_box(differ | (a ^ b)));
    differ == 0
}

/// The origins whose pages may read the event streams: `*` for any.
#[derive(Default)]
pub struct Cors(pub Vec<String>);

impl Cors {
    /// The headers an event stream answers a request from `origin` with: `Vary: Origin` (the
    /// answer depends on it), and for an allowed origin that origin, echoed even for `*`, with
    /// credentials allowed. htmx's SSE extension opens its `EventSource` with
    /// `withCredentials: true`, which a browser lets a page read only with both; the streams
    /// depend on no cookie, so a page learns nothing from them it could not read without one.
    /// None without `--cors`.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let mut headers = vec![("Vary", "Origin".into())];
        let allowed = |sent: &&str| self.0.iter().any(|a| a == "*" || a == sent);
        if let Some(origin) = origin.filter(allowed) {
            headers.push(("Access-Control-Allow-Origin", origin.to_owned()));
            headers.push(("Access-Control-Allow-Credentials", "true".into()));
        }
        headers
    }

    /// The headers a preflight lets another site's page send with a stream's `GET`: those it
    /// asks for (htmx 4 sends its `HX-*` headers; a reconnection sends `Last-Event-ID`), which
    /// change nothing a stream sends. None without `--cors`, or for a list that is not header
    /// names.
    pub fn allow_headers(&self, requested: Option<&str>) -> Option<String> {
        let requested = requested.unwrap_or("Last-Event-ID");
        let names = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ',' | ' ');
        (!self.0.is_empty() && requested.chars().all(names)).then(|| requested.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Token {
        Token(text.as_bytes().into())
    }

    #[test]
    fn only_the_bearer_token_is_admitted() {
        let token = token("s3cret");
        assert!(token.admits(Some("Bearer s3cret")));
        assert!(token.admits(Some("bearer  s3cret")));
        for refused in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
        ] {
            assert!(!token.admits(refused), "{refused:?}");
        }
        assert!(!token.admits(Some("Basic s3cret")));
        assert!(!token.admits(Some("Bearer S3cret")));
    }

    #[test]
    fn the_token_is_the_files_first_line_and_a_readable_file_is_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("sse-htmx-token-{}", std::process::id()));
        std::fs::write(&path, "abc \nsecond line\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (token, warning) = Token::read(&path).unwrap();
        assert!(token.admits(Some("Bearer abc")));
        assert_eq!(warning, None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warning = Token::read(&path).unwrap().1.expect("a warning");
        assert!(warning.ends_with("(mode 644); chmod 600 it"), "{warning}");
        std::fs::write(&path, "\nabc\n").unwrap();
        assert!(Token::read(&path).is_err(), "an empty first line");
        // A byte-order mark, as some editors write, is not part of it.
        std::fs::write(&path, "\u{feff}abc\r\n").unwrap();
        assert!(Token::read(&path).unwrap().0.admits(Some("Bearer abc")));
        // No request could carry it: tiny_http refuses a header that is not ASCII.
        std::fs::write(&path, "pässwort\n").unwrap();
        let refused = Token::read(&path).err().expect("refused");
        assert!(
            refused.to_string().contains("not printable ASCII"),
            "{refused}"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(Token::read(&path).is_err(), "no file");
    }

    #[test]
    fn an_allowed_origin_is_echoed_and_the_answer_varies_by_origin() {
        let vary = [("Vary", "Origin".to_owned())];
        let allowed = |origin: &str| {
            [
                vary[0].clone(),
                ("Access-Control-Allow-Origin", origin.to_owned()),
                ("Access-Control-Allow-Credentials", "true".to_owned()),
            ]
        };
        let cors = Cors(vec![
            "http://a.example".into(),
            "http://b.example:8080".into(),
        ]);
        let b = "http://b.example:8080";
        assert_eq!(cors.headers(Some(b)), allowed(b));
        assert_eq!(cors.headers(Some("http://c.example")), vary);
        assert_eq!(cors.headers(None), vary);
        let any = Cors(vec!["*".into()]);
        let c = "http://c.example";
        assert_eq!(any.headers(Some(c)), allowed(c));
        assert!(Cors::default().headers(Some("http://a.example")).is_empty());
    }

    #[test]
    fn a_preflight_may_send_the_header_names_it_asks_for() {
        let cors = Cors(vec!["*".into()]);
        let asked = "hx-request, hx-current-url, last-event-id";
        assert_eq!(cors.allow_headers(Some(asked)).as_deref(), Some(asked));
        assert_eq!(cors.allow_headers(None).as_deref(), Some("Last-Event-ID"));
        assert_eq!(cors.allow_headers(Some("a;b")), None);
        assert_eq!(Cors::default().allow_headers(Some("hx-request")), None);
    }
}
