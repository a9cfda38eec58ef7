//! The OpenID Connect provider's wiring: the service over the applications that are clients,
//! the signing keys (sealed under the server key), and the state of the HTTP front's
//! endpoints and sign-in pages. Present only when some `[[application]]` has `redirect_uris`.

use std::sync::Arc;

use countersign_core::application::Applications;
use countersign_core::oidc::{Lifetimes, OidcService};

use crate::http::flow::FlowKey;
use crate::http::oidc::OidcApi;
use crate::oidc::{SealKey, SigningKeys};
use crate::system::OsRandom;

/// What the provider keeps for the life of the process.
pub struct OidcParts {
    pub service: Arc<OidcService>,
    pub keys: Arc<SigningKeys>,
    flow_key: FlowKey,
    seal: SealKey,
}

impl OidcParts {
    /// The key sealing the signing keys (for `countersign keys rotate`).
    pub fn seal(&self) -> &SealKey {
        &self.seal
    }
}

/// The issuer: `[server] public_url` without a trailing slash.
pub fn issuer(public_url: &str) -> String {
    public_url.trim_end_matches('/').to_owned()
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

impl super::App {
    /// The provider's parts, when the configuration has clients.
    pub(super) fn build_oidc(
        config: &crate::config::Config,
        applications: &Applications,
        store: &Arc<dyn countersign_core::ports::Store>,
        clock: &Arc<dyn countersign_core::ports::Clock>,
        server_key: &[u8],
    ) -> Option<OidcParts> {
        if !config.applications.iter().any(|a| a.oidc.is_some()) {
            return None;
        }
        let o = &config.oidc;
        let store_all = store.clone();
        let store: Arc<dyn countersign_core::ports::oidc::OidcStore> = store.clone();
        let service = OidcService {
            issuer: issuer(config.public_url.as_deref().unwrap_or_default()),
            applications: Arc::new(applications.clone()),
            store: store.clone(),
            clock: clock.clone(),
            random: Arc::new(OsRandom),
            lifetimes: Lifetimes {
                code: o.code_lifetime,
                access_token: o.access_token_lifetime,
                id_token: o.id_token_lifetime,
            },
            audit: countersign_core::attempt::AuditTrail::new(store_all.clone(), clock.clone()),
        };
        let seal = SealKey::derive(server_key);
        let keys = SigningKeys::new(store, seal.clone(), clock.clone(), o.id_token_lifetime);
        Some(OidcParts {
            service: Arc::new(service),
            keys: Arc::new(keys),
            flow_key: FlowKey::derive(server_key),
            seal,
        })
    }

    /// The HTTP front's provider state.
    pub(super) fn oidc_api(&self) -> Option<OidcApi> {
        let parts = self.oidc.as_ref()?;
        let issuer = &parts.service.issuer;
        Some(OidcApi {
            service: parts.service.clone(),
            keys: parts.keys.clone(),
            login: self.login.clone(),
            otp: self.otp.clone(),
            applications: parts.service.applications.clone(),
            flow_key: parts.flow_key.clone(),
            sign_in_lifetime: self.config.oidc.sign_in_lifetime,
            secure_cookies: issuer.starts_with("https://"),
            own_origins: origin(issuer).into_iter().collect(),
        })
    }
}
