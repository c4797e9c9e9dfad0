//! The web console: the page at `/` and its files at `/console/{file}`,
//! from `vigil-console`'s embedded assets.
//!
//! The files are the same for everyone and hold no data (every figure the
//! page shows comes from the admin API, which checks the key on each call:
//! the page sends it as `x-api-key` from session storage). So they are
//! served without a key, as `/openapi.json` is: a browser cannot add a
//! header to a navigation, and no cookie is ever set (so there is no
//! CSRF). A strict Content-Security-Policy allows scripts, styles and
//! requests from this origin only, no inline script or style, no frames.
//! Each file carries an `ETag` (`If-None-Match` answers 304) and is
//! gzipped once, on first request, for clients that accept it.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vigil_console::{ASSETS, Asset};

use crate::error::{ApiError, ErrorCode};

/// The console's Content-Security-Policy: nothing from elsewhere, nothing
/// inline, no plugins, no frames, no form posts.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'none'";

struct Prepared {
    etag: String,
    gzip: Vec<u8>,
}

fn prepared(index: usize) -> &'static Prepared {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    &PREPARED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(asset.bytes);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                Prepared {
                    etag: format!("\"{hex}\""),
                    gzip: gzip(asset.bytes),
                }
            })
            .collect()
    })[index]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    if encoder.write_all(bytes).is_err() {
        return Vec::new();
    }
    encoder.finish().unwrap_or_default()
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn serve(index: usize, asset: &Asset, headers: &HeaderMap) -> Response {
    let prepared = prepared(index);
    let mut response = if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == prepared.etag || t.trim() == "*")
        }) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(headers) && !prepared.gzip.is_empty() {
        // Prepared once for the process: served without a copy.
        let gzip: &'static [u8] = &prepared.gzip;
        let mut r = gzip.into_response();
        r.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.bytes.into_response()
    };
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Revalidate every time (the ETag makes that a 304): a new binary's
    // files are seen at once, with no stale mix of old and new modules.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(&prepared.etag) {
        h.insert(ETAG, etag);
    }
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}

/// The console's page (dashboards, alarms, logs, traces); the data come
/// from the admin API with the key the page is given.
#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 200, description = "the console's HTML page, with a strict Content-Security-Policy", body = String, content_type = "text/html"),
        (status = 304, description = "`If-None-Match` matches the page's ETag")))]
pub async fn index(headers: HeaderMap) -> Response {
    serve(0, &ASSETS[0], &headers)
}

/// One of the console's files: its ES modules (`app.js`, ...), its CSS,
/// and the vendored uPlot (`uPlot.iife.min.js`, `uPlot.min.css`,
/// `uPlot.LICENSE`).
#[utoipa::path(get, path = "/console/{file}", tag = "console",
    params(("file" = String, Path, description = "the file's name, e.g. `app.js`")),
    responses((status = 200, description = "the file (JavaScript, CSS or text)", content(
            (String = "text/javascript"), (String = "text/css"), (String = "text/plain"))),
        (status = 304, description = "`If-None-Match` matches the file's ETag"),
        (status = 404, description = "no such file", body = crate::error::ErrorBody)))]
pub async fn file(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .position(|a| a.name == file)
        .map(|i| serve(i, &ASSETS[i], &headers))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("the console has no file `{file}`"),
            )
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::{Request, StatusCode};

    use crate::test_util::{demo_state, send};

    async fn get(path: &str, headers: &[(&str, &str)]) -> axum::response::Response {
        use tower::ServiceExt as _;
        let mut request = Request::get(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        crate::app(demo_state())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body(response: axum::response::Response) -> Vec<u8> {
        use http_body_util::BodyExt as _;
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served_with_the_csp() {
        let response = get("/", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.get("set-cookie").is_none());
        let page = String::from_utf8(body(response).await).unwrap();
        assert!(page.contains("/console/app.js"), "{page}");

        let js = get("/console/app.js", &[]).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            js.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            body(js).await,
            vigil_console::asset("app.js").unwrap().bytes
        );

        let missing = send(
            &demo_state(),
            Request::get("/console/secret.txt")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.json["code"], "not_found", "{}", missing.json);
    }

    #[tokio::test]
    async fn gzip_and_etags() {
        use std::io::Read as _;
        let plain = get("/console/uPlot.iife.min.js", &[]).await;
        let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
        let plain = body(plain).await;
        let zipped = get(
            "/console/uPlot.iife.min.js",
            &[("accept-encoding", "br, gzip")],
        )
        .await;
        assert_eq!(zipped.headers()["content-encoding"], "gzip");
        let zipped = body(zipped).await;
        assert!(
            zipped.len() * 2 < plain.len(),
            "{} vs {}",
            zipped.len(),
            plain.len()
        );
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain);
        let refused = get(
            "/console/uPlot.iife.min.js",
            &[("accept-encoding", "gzip;q=0")],
        )
        .await;
        assert!(refused.headers().get("content-encoding").is_none());
        let cached = get("/console/uPlot.iife.min.js", &[("if-none-match", &etag)]).await;
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        assert!(body(cached).await.is_empty());
    }

    /// With keys configured the page still loads (it holds no data), and
    /// the API it reads from still wants the admin key.
    #[tokio::test]
    async fn the_page_is_open_and_its_data_are_not() {
        use crate::gateway::tests::{config_with, keys_toml};
        let state = crate::AppState::from_config(&config_with(&keys_toml())).unwrap();
        let page = send(&state, Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(page.status, StatusCode::OK);
        let data = send(
            &state,
            Request::get("/api/dashboards").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(data.status, StatusCode::UNAUTHORIZED);
    }
}
