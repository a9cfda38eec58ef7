//! Cross-site request forgery on the manager's page. The decision is a form POST, and a form
//! is the one request another site can make a browser send, so a POST must show three things:
//! the browser did not mark it `Sec-Fetch-Site: cross-site` (Fetch Metadata, W3C), an `Origin`
//! (RFC 6454 §7) that is ours when there is one, and the hidden field only our GET could have
//! written: [`CsrfKey::token_for`] the link token, an HMAC-SHA-256 under a server key, compared
//! in constant time. The link token itself is the capability; these checks make sure it is
//! used by someone looking at our page, not by a page that learnt or guessed the URL.

use axum::http::{HeaderMap, header};
use countersign_core::crypto::{ct_eq, to_hex};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key of the hidden field. Every node behind one load balancer needs the same key (a page
/// served by one node is posted to whichever), hence [`CsrfKey::derive`] from the server's
/// secret key rather than a fresh random one per process.
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(<redacted>)")
    }
}

/// Separates this use of the server key from every other (the OTP hashes use it raw).
const DERIVATION_LABEL: &[u8] = b"countersign approval page csrf v1";

impl CsrfKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// A key of its own derived from the server's secret key (HMAC-SHA-256 over a fixed
    /// label), so the OTP key is never used for anything else directly.
    pub fn derive(server_key: &[u8]) -> Self {
        Self(mac(server_key, DERIVATION_LABEL))
    }

    /// The hidden field for the page of `link_token`, hex.
    pub fn token_for(&self, link_token: &str) -> String {
        to_hex(&mac(&self.0, link_token.as_bytes()))
    }

    /// Whether `presented` is the field for `link_token`, in constant time.
    pub fn verify(&self, link_token: &str, presented: &str) -> bool {
        ct_eq(self.token_for(link_token).as_bytes(), presented.as_bytes())
    }
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: this cannot fail; an all-zero tag never matches a
    // presented one anyone could have computed, and a derived key of zeros still works.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Why a POST was refused before its form was read (for the log; the page says less).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forged {
    CrossSite,
    ForeignOrigin,
    MissingField,
    WrongField,
}

impl Forged {
    pub fn as_str(self) -> &'static str {
        match self {
            Forged::CrossSite => "Sec-Fetch-Site: cross-site",
            Forged::ForeignOrigin => "Origin is not this server",
            Forged::MissingField => "no csrf field",
            Forged::WrongField => "wrong csrf field",
        }
    }
}

/// The header checks: `Sec-Fetch-Site` and `Origin`. `own_origins` are `scheme://host[:port]`
/// of the public URL and every approval profile's server; the request's own `Host` counts too.
pub fn check_headers(headers: &HeaderMap, own_origins: &[String]) -> Result<(), Forged> {
    let fetch_site: Vec<&[u8]> = headers
        .get_all("sec-fetch-site")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if fetch_site
        .iter()
        .any(|v| v.eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(Forged::CrossSite);
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    if origins.next().is_some() {
        return Err(Forged::ForeignOrigin);
    }
    let Ok(origin) = origin.to_str() else {
        return Err(Forged::ForeignOrigin);
    };
    let origin = origin.trim();
    if origin == "null" {
        // Our pages send `Referrer-Policy: no-referrer`, and with that policy browsers send
        // `Origin: null` on the page's own POST (Fetch §3.1 "append a request `Origin`
        // header", step for no-referrer). Believed only with the browser's own word that the
        // request is same-origin.
        // A browser without Fetch Metadata (older Safari) sends `null` and no
        // `Sec-Fetch-Site`: the hidden field, which only our page could have written, decides.
        let same_origin = fetch_site.is_empty()
            || (fetch_site.len() == 1 && fetch_site[0].eq_ignore_ascii_case(b"same-origin"));
        return if same_origin {
            Ok(())
        } else {
            Err(Forged::ForeignOrigin)
        };
    }
    if is_own_host(origin, headers) || is_listed(origin, own_origins) {
        Ok(())
    } else {
        Err(Forged::ForeignOrigin)
    }
}

/// `http(s)://<the request's Host>`.
fn is_own_host(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|a| !a.is_empty() && a.eq_ignore_ascii_case(host.trim()))
}

fn is_listed(origin: &str, own_origins: &[String]) -> bool {
    let Some(origin) = normalized(origin) else {
        return false;
    };
    own_origins
        .iter()
        .any(|own| normalized(own).is_some_and(|own| own == origin))
}

/// `scheme://host[:port]` of a URL or an origin (RFC 6454 §6.1), lower-cased, without a path
/// and without the scheme's default port (browsers leave it out of `Origin`), so a configured
/// `https://mfa.example.com:443/` matches the `https://mfa.example.com` a browser sends.
fn normalized(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => "",
    };
    let authority = match authority.strip_suffix(default_port) {
        Some(host) if !default_port.is_empty() => host.to_owned(),
        _ => authority,
    };
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// The hidden field's check.
pub fn check_field(key: &CsrfKey, link_token: &str, field: Option<&str>) -> Result<(), Forged> {
    match field {
        None | Some("") => Err(Forged::MissingField),
        Some(f) if key.verify(link_token, f) => Ok(()),
        Some(_) => Err(Forged::WrongField),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const OWN: &[&str] = &[
        "https://mfa.example.com",
        "https://approve.example.com:8443/",
        "https://login.example.com:443/sso",
    ];

    fn own() -> Vec<String> {
        OWN.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_field_is_bound_to_the_link_and_the_key() {
        let key = CsrfKey::derive(b"server key of 32 bytes or so....");
        let token = "a".repeat(64);
        let field = key.token_for(&token);
        assert_eq!(field.len(), 64);
        assert!(key.verify(&token, &field));
        assert!(!key.verify(&"b".repeat(64), &field), "another link");
        assert!(!CsrfKey::derive(b"another key").verify(&token, &field));
        assert!(!key.verify(&token, &field[..63]));
        assert_eq!(check_field(&key, &token, None), Err(Forged::MissingField));
        assert_eq!(
            check_field(&key, &token, Some("")),
            Err(Forged::MissingField)
        );
        assert_eq!(
            check_field(&key, &token, Some("00")),
            Err(Forged::WrongField)
        );
        assert_eq!(check_field(&key, &token, Some(&field)), Ok(()));
        assert!(!format!("{key:?}").contains(&field[..8]));
    }

    #[test]
    fn only_our_origins_and_same_site_fetches_pass() {
        let h = |list| check_headers(&headers(list), &own());
        // Nothing said: older browsers and non-browsers rely on the field alone.
        assert_eq!(h(&[]), Ok(()));
        assert_eq!(h(&[("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(h(&[("sec-fetch-site", "same-site")]), Ok(()));
        assert_eq!(h(&[("sec-fetch-site", "none")]), Ok(()));
        assert_eq!(
            h(&[("sec-fetch-site", "cross-site")]),
            Err(Forged::CrossSite)
        );
        assert_eq!(
            h(&[("sec-fetch-site", "Cross-Site")]),
            Err(Forged::CrossSite)
        );
        // The request's own host, either scheme (TLS may end at a proxy).
        let host = [
            ("host", "10.1.2.3:8080"),
            ("origin", "http://10.1.2.3:8080"),
        ];
        assert_eq!(h(&host), Ok(()));
        assert_eq!(
            h(&[("host", "10.1.2.3:8080"), ("origin", "http://10.1.2.3")]),
            Err(Forged::ForeignOrigin)
        );
        // Configured origins, any case, a trailing slash in the configuration ignored.
        assert_eq!(h(&[("origin", "https://MFA.example.com")]), Ok(()));
        assert_eq!(h(&[("origin", "https://approve.example.com:8443")]), Ok(()));
        // A configured URL's path and default port do not matter; the browser sends neither.
        assert_eq!(h(&[("origin", "https://login.example.com")]), Ok(()));
        for foreign in [
            "https://evil.example",
            "https://mfa.example.com.evil.example",
            "http://mfa.example.com:444",
            "http://mfa.example.com",
            "https://approve.example.com",
            "mfa.example.com",
            "",
        ] {
            assert_eq!(
                check_headers(
                    &{
                        let mut m = headers(&[("host", "10.1.2.3")]);
                        m.insert("origin", HeaderValue::from_str(foreign).unwrap());
                        m
                    },
                    &own()
                ),
                Err(Forged::ForeignOrigin),
                "{foreign:?}"
            );
        }
        // Two origins: not a browser's request.
        assert_eq!(
            h(&[
                ("origin", "https://mfa.example.com"),
                ("origin", "https://evil.example")
            ]),
            Err(Forged::ForeignOrigin)
        );
        // `Origin: null` (our no-referrer policy) with Sec-Fetch-Site: same-origin, or from a
        // browser that sends no Fetch Metadata at all (the hidden field then decides).
        assert_eq!(
            h(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            Ok(())
        );
        assert_eq!(h(&[("origin", "null")]), Ok(()));
        assert_eq!(
            h(&[("origin", "null"), ("sec-fetch-site", "same-site")]),
            Err(Forged::ForeignOrigin)
        );
    }
}
