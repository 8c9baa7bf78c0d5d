//! The dashboard at `/ui/`: three static files (HTML, CSS, JavaScript)
//! embedded in the binary, so an operator needs no CDN, no build step and no
//! second server to see what the plugins and calls are doing.
//!
//! The page holds no data and needs no access rule of its own: its script
//! reads the operator endpoints (`/plugins`, `/api/*`), which enforce theirs,
//! and asks for the admin token when they answer 401 or 403. Every URL the
//! page uses is relative, so it also works when a service mounts
//! Switchboard's router under a prefix.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Where the page may load from and what it may do: its own files only (no
/// inline script or style, no other origin), never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// `GET /ui` (a redirect), `/ui/`, `/ui/app.js`, `/ui/style.css`.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/ui", get(redirect))
        .route("/ui/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
}

/// `/ui` to `/ui/`, so that the page's relative URLs resolve inside `/ui/`.
/// The `Location` is relative too (`ui/`), which keeps any mount prefix.
async fn redirect() -> Response {
    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "ui/")]).into_response()
}

/// One embedded file, revalidated on every load (`no-cache`: a new binary
/// serves its own page at once) and held to the page's security policy.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        routes().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn each_file_has_its_type_and_the_policy() {
        for (path, content_type, body) in [
            ("/ui/", "text/html; charset=utf-8", INDEX_HTML),
            ("/ui/app.js", "text/javascript; charset=utf-8", APP_JS),
            ("/ui/style.css", "text/css; charset=utf-8", STYLE_CSS),
        ] {
            let response = get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
            assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().starts_with("default-src 'self';"));
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(bytes, body.as_bytes(), "{path}");
        }
    }

    #[tokio::test]
    async fn ui_without_slash_redirects_inside_it() {
        let response = get("/ui").await;
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(response.headers()[header::LOCATION], "ui/");
        assert_eq!(get("/ui/missing.js").await.status(), StatusCode::NOT_FOUND);
    }

    /// The policy forbids inline script and style: the page must not need them.
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = INDEX_HTML.to_lowercase();
        assert!(!html.contains("<style"), "inline <style>");
        assert!(!html.contains(" style="), "a style attribute");
        let handler = html.match_indices(" on").any(|(at, _)| {
            let rest = &html[at + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!handler, "an inline event handler such as onclick=");
        for script in html.split("<script").skip(1) {
            let tag = &script[..script.find('>').unwrap()];
            assert!(tag.contains(" src="), "an inline <script>");
        }
        assert!(!APP_JS.contains("innerHTML"), "the script builds elements with textContent, never markup");
    }
}
