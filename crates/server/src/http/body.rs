//! Request bodies at the edge. [`read_whole`] reads every body before any handler runs, within
//! the size limit and `[http] body_read_timeout`, so a client that stalls mid-body (slowloris on
//! the body, which hyper's header timeout does not cover) is answered 408 and disconnected, and
//! a body that breaks its framing (bad chunked encoding) is a 400 problem. [`JsonBody`] is the
//! JSON API's rule on media types: only `application/json` (RFC 8259 §11; a `charset=utf-8`
//! parameter is tolerated), so a page elsewhere cannot make a browser send a cross-site
//! "simple" POST (text/plain, form-urlencoded, multipart) to the API.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::problem::Problem;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

enum Unread {
    TooLarge,
    Malformed,
    TimedOut,
}

/// Middleware: the body, read whole (at most [`MAX_BODY`] bytes, within `timeout`: `[http]
/// body_read_timeout`), handed on as a complete body; or the problem that ends the connection.
pub async fn read_whole(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let read = if declared.is_some_and(|n| n > MAX_BODY as u64) {
        // Refused before a byte of it is read.
        Err(Unread::TooLarge)
    } else {
        tokio::time::timeout(timeout, collect(body))
            .await
            .unwrap_or(Err(Unread::TimedOut))
    };
    match read {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(why) => {
            let (status, detail) = match why {
                Unread::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, None),
                Unread::TimedOut => (StatusCode::REQUEST_TIMEOUT, None),
                Unread::Malformed => (
                    StatusCode::BAD_REQUEST,
                    Some(
                        "the request body could not be read: broken chunked encoding or cut short",
                    ),
                ),
            };
            let mut p = Problem::for_status(status);
            if let Some(d) = detail {
                p.detail = d.to_owned();
            }
            let mut resp = p.into_response();
            // The rest of the body is unread: this connection cannot carry another request.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

async fn collect(body: Body) -> Result<Bytes, Unread> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Unread::Malformed)?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(Unread::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// A JSON request body, as bytes for the handler to parse: 415 unless the request says
/// `Content-Type: application/json`.
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        if !is_json(req.headers()) {
            return Err(Problem::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        Bytes::from_request(req, state)
            .await
            .map(JsonBody)
            .map_err(|e| Problem::for_status(e.status()))
    }
}

/// `application/json`, any case, optionally with `charset=utf-8` (JSON is UTF-8, RFC 8259 §8.1)
/// and nothing else.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|t| t.eq_ignore_ascii_case("application/json"))
    {
        return false;
    }
    parts.all(|param| {
        param.split_once('=').is_some_and(|(name, v)| {
            name.trim().eq_ignore_ascii_case("charset")
                && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(ct) {
            h.insert(header::CONTENT_TYPE, v);
        }
        h
    }

    #[test]
    fn only_json_is_json() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json(&with(ok)), "{ok}");
        }
        for no in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/json; charset=latin1",
            "application/json; boundary=x",
            "text/plain; application/json",
        ] {
            assert!(!is_json(&with(no)), "{no}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
