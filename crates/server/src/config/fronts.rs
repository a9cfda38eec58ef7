//! The fronts and the server itself: `[server]`, `[listen]`, `[http]` and `[ldap]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::store::StoreConfig;
use super::validator::{At, Span, Validator};
use crate::admission::Network;

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerSection {
    /// Base URL of this server as users' browsers reach it (approval links).
    public_url: Option<String>,
    /// File holding the key (hex, at least 32 hex digits) under which OTPs are hashed. Created
    /// with fresh random bytes when missing. Default: the SQLite file's path plus `.key`.
    secret_key_file: Option<PathBuf>,
}

/// `[listen]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenSection {
    /// Address of the HTTP API, e.g. `127.0.0.1:8080`.
    http: Option<String>,
    /// Address of the LDAP front (plain, StartTLS available when [ldap] has a certificate).
    ldap: Option<String>,
    /// Address of the LDAPS front (TLS from the first byte; needs [ldap] certificate and key).
    ldaps: Option<String>,
}

/// `[http]`: options of the HTTP front.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpSection {
    /// Show users' full addresses in `GET /api/v1/otp/mechanisms` (default false: masked, e.g.
    /// `a***@example.com`). Anyone who can reach the API can call it, so only turn this on
    /// when the API is reachable by trusted applications alone.
    pub(super) reveal_recipients: Option<bool>,
    /// Time a client has to send a request's headers (default 10s); slower ones are cut off.
    pub(super) header_read_timeout: Option<String>,
    /// Time a client has to send a request's body once its headers are in (default 10s);
    /// slower ones get a 408 and the connection is closed.
    pub(super) body_read_timeout: Option<String>,
    /// Connections served at once (default 1024); more are closed on arrival.
    pub(super) max_connections: Option<usize>,
    /// Connections one client address may hold at once (default 64).
    pub(super) max_connections_per_client: Option<usize>,
    /// Reverse proxies (addresses or networks, `10.0.0.0/8`) whose `X-Forwarded-For` names the
    /// client; default none (the header is ignored). Rate limits and the audit then see the
    /// client behind the proxy instead of the proxy.
    pub(super) trusted_proxies: Option<Vec<String>>,
}

/// The validated `[http]` timeouts and connection caps.
pub(super) struct HttpLimits {
    pub(super) header_read_timeout: Duration,
    pub(super) body_read_timeout: Duration,
    pub(super) max_connections: usize,
    pub(super) max_connections_per_client: usize,
    pub(super) trusted_proxies: Vec<Network>,
}

/// `[ldap]`: the LDAP front.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LdapSection {
    /// PEM certificate chain for StartTLS and LDAPS.
    tls_certificate_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    tls_key_file: Option<PathBuf>,
    /// Serve Deliver OTP (which carries the static password) on connections that are neither
    /// LDAPS nor StartTLS. Default false: confidentialityRequired (13).
    allow_deliver_otp_without_tls: Option<bool>,
    /// Forms a simple bind name may take: "dn" (always), "u" (`u:name`), "name" (a plain
    /// username). Default ["dn"].
    bind_name_forms: Option<Vec<String>>,
    /// Show full addresses in Get Supported OTP Delivery Mechanisms to callers not bound as
    /// that user (default false: masked).
    reveal_recipients: Option<bool>,
    /// Largest LDAP message accepted, in bytes (default 65536); larger ones close the connection.
    max_message_bytes: Option<usize>,
    /// A connection with nothing outstanding is closed after this long (default 5m).
    idle_timeout: Option<String>,
    /// Connections served at once (default 1024); more are closed on arrival.
    max_connections: Option<usize>,
    /// Connections one client address may hold at once (default 64).
    max_connections_per_client: Option<usize>,
    /// Operations outstanding on one connection (default 16); further requests wait unread.
    max_operations_per_connection: Option<usize>,
    /// The `[[application]]` LDAP binds are logins of (its methods, whether Approved OTP
    /// applies).
    application: Option<String>,
    /// How long a bind under an approval profile is held waiting for the manager's decision
    /// (default 60s, from 1s to 10m); LDAP clients time out, so keep it below theirs.
    approval_wait: Option<String>,
}

/// Which simple bind names are accepted besides DNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BindNameForms {
    /// `u:name`
    pub u_prefixed: bool,
    /// `name`
    pub plain: bool,
}

#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// PEM chain and key, read at start.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// The files they were read from (for `config show`).
    pub tls_files: Option<(PathBuf, PathBuf)>,
    pub allow_deliver_otp_without_tls: bool,
    pub bind_name_forms: BindNameForms,
    pub reveal_recipients: bool,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_operations_per_connection: usize,
    /// `[ldap] application`: the `[[application]]` LDAP binds are logins of.
    pub application: Option<String>,
    /// `[ldap] approval_wait`: how long a bind under an approval profile waits for a decision.
    pub approval_wait: Duration,
}

/// The addresses of `[listen]`.
pub(super) struct ListenAddresses {
    pub(super) http: Option<SocketAddr>,
    pub(super) ldap: Option<SocketAddr>,
    pub(super) ldaps: Option<SocketAddr>,
}

/// Largest `[ldap] max_message_bytes` accepted: 16 MiB.
pub const MAX_LDAP_MESSAGE: usize = 16 * 1024 * 1024;

/// `[ldap] approval_wait`: default, shortest and longest.
const APPROVAL_WAIT: (Duration, Duration, Duration) = (
    Duration::from_secs(60),
    Duration::from_secs(1),
    Duration::from_secs(600),
);

impl Validator<'_> {
    /// `[http]` timeouts and connection caps, with their defaults.
    pub(super) fn http_limits(&mut self, http: &HttpSection, span: &Span) -> HttpLimits {
        let header_read_timeout = self.duration(
            span,
            "http.header_read_timeout",
            http.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        );
        let body_read_timeout = self.duration(
            span,
            "http.body_read_timeout",
            http.body_read_timeout.as_deref(),
            Duration::from_secs(10),
        );
        let mut trusted_proxies = Vec::new();
        for (i, text) in http.trusted_proxies.iter().flatten().enumerate() {
            match Network::parse(text) {
                Some(n) => trusted_proxies.push(n),
                None => self.key_error(
                    span,
                    "trusted_proxies",
                    format!("http.trusted_proxies[{i}]"),
                    format!("{text:?} is not an address or a network such as 10.0.0.0/8"),
                ),
            }
        }
        let mut at_least_one = |field: &str, value: Option<usize>, default: usize| match value {
            Some(0) => {
                self.key_error(span, field, format!("http.{field}"), "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        };
        HttpLimits {
            trusted_proxies,
            header_read_timeout,
            body_read_timeout,
            max_connections: at_least_one("max_connections", http.max_connections, 1024),
            max_connections_per_client: at_least_one(
                "max_connections_per_client",
                http.max_connections_per_client,
                64,
            ),
        }
    }

    /// `[server]`: the public URL, and the OTP key's file (beside the SQLite file by default).
    pub(super) fn server(
        &mut self,
        server: &ServerSection,
        span: Option<Span>,
        store: Option<&StoreConfig>,
    ) -> (Option<String>, PathBuf) {
        let secret_key_file = match (&server.secret_key_file, store) {
            (Some(p), _) => self.path(p),
            (None, Some(StoreConfig::Sqlite(db))) => {
                let mut p = db.clone().into_os_string();
                p.push(".key");
                PathBuf::from(p)
            }
            (None, None) => PathBuf::new(),
        };
        if let Some(url) = &server.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            self.error(
                span,
                "server.public_url",
                format!("{url:?} is not an http(s) URL"),
            );
        }
        (server.public_url.clone(), secret_key_file)
    }

    pub(super) fn listen(&mut self, listen: &ListenSection, span: Option<Span>) -> ListenAddresses {
        let mut address = |key: &str, text: &Option<String>| {
            text.as_deref().and_then(|a| match a.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.error(
                        span.clone(),
                        format!("listen.{key}"),
                        format!("{a:?} is not an address such as 127.0.0.1:8080"),
                    );
                    None
                }
            })
        };
        ListenAddresses {
            http: address("http", &listen.http),
            ldap: address("ldap", &listen.ldap),
            ldaps: address("ldaps", &listen.ldaps),
        }
    }

    /// `[ldap]`; `ldaps` says whether `[listen] ldaps` is set (it needs a certificate).
    pub(super) fn ldap_config(&mut self, l: &LdapSection, span: &Span, ldaps: bool) -> LdapConfig {
        let tls = self.ldap_tls(l, span);
        if ldaps && l.tls_certificate_file.is_none() {
            self.error(
                Some(span.clone()),
                "ldap.tls_certificate_file",
                "missing: listen.ldaps needs a certificate and key",
            );
        }
        let mut forms = BindNameForms::default();
        for f in l
            .bind_name_forms
            .clone()
            .unwrap_or_else(|| vec!["dn".into()])
        {
            match f.as_str() {
                "dn" => {}
                "u" => forms.u_prefixed = true,
                "name" => forms.plain = true,
                other => self.key_error(
                    span,
                    "bind_name_forms",
                    "ldap.bind_name_forms",
                    format!("{other:?}: expected dn, u or name"),
                ),
            }
        }
        let positive = |v: &mut Self, field: &str, value: Option<usize>, default: usize| match value
        {
            Some(0) => {
                v.key_error(span, field, format!("ldap.{field}"), "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        };
        let max_message_bytes =
            match positive(self, "max_message_bytes", l.max_message_bytes, 64 * 1024) {
                n if n > MAX_LDAP_MESSAGE => {
                    self.key_error(
                        span,
                        "max_message_bytes",
                        "ldap.max_message_bytes",
                        format!("at most {MAX_LDAP_MESSAGE}"),
                    );
                    64 * 1024
                }
                n => n,
            };
        LdapConfig {
            tls_files: l
                .tls_certificate_file
                .as_ref()
                .zip(l.tls_key_file.as_ref())
                .filter(|_| tls.is_some())
                .map(|(c, k)| (self.path(c), self.path(k))),
            tls,
            allow_deliver_otp_without_tls: l.allow_deliver_otp_without_tls.unwrap_or(false),
            bind_name_forms: forms,
            reveal_recipients: l.reveal_recipients.unwrap_or(false),
            max_message_bytes,
            idle_timeout: self.duration(
                span,
                "ldap.idle_timeout",
                l.idle_timeout.as_deref(),
                Duration::from_secs(300),
            ),
            max_connections: positive(self, "max_connections", l.max_connections, 1024),
            max_connections_per_client: positive(
                self,
                "max_connections_per_client",
                l.max_connections_per_client,
                64,
            ),
            max_operations_per_connection: positive(
                self,
                "max_operations_per_connection",
                l.max_operations_per_connection,
                16,
            ),
            application: l.application.clone(),
            approval_wait: self.approval_wait(l, span),
        }
    }

    /// `[ldap] approval_wait`, from 1s to 10m.
    fn approval_wait(&mut self, l: &LdapSection, span: &Span) -> Duration {
        let (default, min, max) = APPROVAL_WAIT;
        let key = "ldap.approval_wait";
        let wait = self.duration(span, key, l.approval_wait.as_deref(), default);
        if wait < min || wait > max {
            self.key_error(span, "approval_wait", key, "must be from 1s to 10m");
            return default;
        }
        wait
    }

    /// The certificate and key of the LDAP front: both or neither.
    fn ldap_tls(&mut self, l: &LdapSection, span: &Span) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut read = |field: &str, p: &Path| {
            self.pem_file(span, At::Field(field), &format!("ldap.{field}"), p)
        };
        match (&l.tls_certificate_file, &l.tls_key_file) {
            (Some(c), Some(k)) => read("tls_certificate_file", c).zip(read("tls_key_file", k)),
            (None, None) => None,
            (Some(_), None) => {
                self.key_error(
                    span,
                    "tls_certificate_file",
                    "ldap.tls_key_file",
                    "missing: a certificate needs its key",
                );
                None
            }
            (None, Some(_)) => {
                self.key_error(
                    span,
                    "tls_key_file",
                    "ldap.tls_certificate_file",
                    "missing: a key needs its certificate",
                );
                None
            }
        }
    }
}
