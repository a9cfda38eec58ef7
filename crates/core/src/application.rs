//! Applications: the clients of countersign (the seed's "application profiles"). Each says which
//! authentication methods it may use and whether Approved OTP applies to its logins. HTTP
//! callers present the application's API key; only its SHA-256 is kept and compared, in
//! constant time, against every application's (so the time taken says nothing about which key
//! came close). API keys are long random strings, so a fast hash is enough.

use sha2::{Digest, Sha256};

use crate::crypto::ct_eq;

/// How a user proves who they are, as approval profiles and applications name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// The static password: LDAP simple binds and password logins.
    Password,
    /// The OTP verify (or SASL bind) after a Deliver OTP.
    DeliveredOtp,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 2] = [AuthMethod::Password, AuthMethod::DeliveredOtp];

    /// As written in the configuration and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::DeliveredOtp => "delivered_otp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One `[[application]]`.
#[derive(Clone)]
pub struct Application {
    pub name: String,
    /// SHA-256 of the API key; `None` for an application that only the LDAP front serves.
    api_key_hash: Option<[u8; 32]>,
    pub methods: Vec<AuthMethod>,
    /// Whether Approved OTP policies apply to this application's logins.
    pub approved_otp: bool,
    /// Set when the application signs its users in through OpenID Connect.
    pub oidc: Option<OidcClient>,
}

/// An application as an OpenID Connect client (its `client_id` is the application's name).
#[derive(Clone)]
pub struct OidcClient {
    /// Compared exactly, as OpenID Connect Core §3.1.2.1 requires.
    pub redirect_uris: Vec<String>,
    /// SHA-256 of the client secret; `None` for a public client (which must use PKCE).
    secret_hash: Option<[u8; 32]>,
}

impl OidcClient {
    pub fn new(redirect_uris: Vec<String>, secret: Option<&str>) -> Self {
        Self {
            redirect_uris,
            secret_hash: secret.map(hash_api_key),
        }
    }

    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// Whether `presented` is the client's secret, in constant time. A public client has none.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_hash {
            Some(hash) => ct_eq(hash, &hash_api_key(presented)),
            None => false,
        }
    }

    /// Exact match (OpenID Connect Core §3.1.2.1), except that a registered `http` loopback
    /// IP literal matches with any port (RFC 8252 §7.3: native apps listen on a port the
    /// system gives them).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|r| r == uri || same_loopback_ignoring_port(r, uri))
    }
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("redirect_uris", &self.redirect_uris)
            .field("secret", &self.secret_hash.map(|_| "<redacted>"))
            .finish()
    }
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("name", &self.name)
            .field("api_key", &self.api_key_hash.map(|_| "<redacted>"))
            .field("methods", &self.methods)
            .field("approved_otp", &self.approved_otp)
            .field("oidc", &self.oidc)
            .finish()
    }
}

impl Application {
    pub fn new(
        name: impl Into<String>,
        api_key: Option<&str>,
        methods: Vec<AuthMethod>,
        approved_otp: bool,
    ) -> Self {
        Self {
            name: name.into(),
            api_key_hash: api_key.map(hash_api_key),
            methods,
            approved_otp,
            oidc: None,
        }
    }

    /// The same application, also an OpenID Connect client.
    pub fn with_oidc(mut self, client: OidcClient) -> Self {
        self.oidc = Some(client);
        self
    }

    pub fn allows(&self, method: AuthMethod) -> bool {
        self.methods.contains(&method)
    }

    pub fn has_api_key(&self) -> bool {
        self.api_key_hash.is_some()
    }
}

/// `http://127.0.0.1[:port]/rest` or `http://[::1][:port]/rest` as (host, rest).
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let after = uri.strip_prefix("http://")?;
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let host = if let Some(v6) = authority.strip_prefix("[::1]") {
        (v6.is_empty() || is_port(v6)).then_some("[::1]")?
    } else {
        let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
        (host == "127.0.0.1" && (port.is_empty() || is_port(port))).then_some(host)?
    };
    Some((host, rest))
}

/// `:N` with N a port a socket can have (1 to 65535, no leading zero).
fn is_port(p: &str) -> bool {
    p.strip_prefix(':').is_some_and(|d| {
        !d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit()) && d.parse::<u16>().is_ok()
    })
}

fn same_loopback_ignoring_port(registered: &str, presented: &str) -> bool {
    match (loopback_parts(registered), loopback_parts(presented)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn hash_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The configured applications.
#[derive(Debug, Clone, Default)]
pub struct Applications {
    list: Vec<Application>,
}

impl Applications {
    pub fn new(list: Vec<Application>) -> Self {
        Self { list }
    }

    pub fn by_name(&self, name: &str) -> Option<&Application> {
        self.list.iter().find(|a| a.name == name)
    }

    /// The application whose API key this is. Every application's hash is compared, whatever
    /// matched, so the answer takes as long for every key.
    pub fn by_api_key(&self, presented: &str) -> Option<&Application> {
        let candidate = hash_api_key(presented);
        let mut found = None;
        for app in &self.list {
            if let Some(hash) = &app.api_key_hash
                && ct_eq(hash, &candidate)
                && found.is_none()
            {
                found = Some(app);
            }
        }
        found
    }

    pub fn iter(&self) -> impl Iterator<Item = &Application> {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port_and_nothing_else_does() {
        let c = OidcClient::new(
            vec![
                "http://127.0.0.1/cb".into(),
                "http://[::1]:8080/cb?x=1".into(),
                "https://rp.example/cb".into(),
                "http://localhost:9/cb".into(),
            ],
            None,
        );
        for ok in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51004/cb",
            "http://[::1]/cb?x=1",
            "http://[::1]:1/cb?x=1",
            "https://rp.example/cb",
            "http://localhost:9/cb",
        ] {
            assert!(c.allows_redirect(ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:80/cb/",
            "http://127.0.0.1:x/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:65536/cb",
            "http://127.0.0.1:08080/cb",
            "http://127.0.0.1.evil/cb",
            "http://127.0.0.1:5@evil/cb",
            "https://127.0.0.1:5/cb",
            "http://[::1]:5/cb",
            "https://rp.example:444/cb",
            "http://localhost:10/cb",
        ] {
            assert!(!c.allows_redirect(bad), "{bad}");
        }
    }

    #[test]
    fn api_keys_are_found_by_hash_and_nothing_else_matches() {
        let apps = Applications::new(vec![
            Application::new("ldap-only", None, vec![AuthMethod::Password], true),
            Application::new("vpn", Some("k-vpn-123"), vec![AuthMethod::Password], true),
            Application::new("wiki", Some("k-wiki-456"), AuthMethod::ALL.to_vec(), false),
        ]);
        assert_eq!(
            apps.by_api_key("k-vpn-123").map(|a| a.name.as_str()),
            Some("vpn")
        );
        assert_eq!(
            apps.by_api_key("k-wiki-456").map(|a| a.name.as_str()),
            Some("wiki")
        );
        for wrong in ["", "k-vpn-12", "k-vpn-1234", "K-VPN-123"] {
            assert!(apps.by_api_key(wrong).is_none(), "{wrong:?}");
        }
        assert!(format!("{:?}", apps).contains("<redacted>"));
        assert!(!format!("{:?}", apps).contains("k-vpn"));
    }

    #[test]
    fn methods_parse_as_configured() {
        assert_eq!(AuthMethod::parse("password"), Some(AuthMethod::Password));
        assert_eq!(
            AuthMethod::parse("delivered_otp"),
            Some(AuthMethod::DeliveredOtp)
        );
        assert_eq!(AuthMethod::parse("otp"), None);
    }
}
