//! The one error of setting a component up from its (already validated) configuration: a
//! courier, a directory or a TLS acceptor whose certificate, header or address its library
//! refuses. It names the component, so the message points at the section to fix.

/// A component that cannot be set up: which one (`mail_profile corp`, `directory corp`,
/// `ldap`), and what is wrong, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{component}: {detail}")]
pub struct SetupError {
    pub component: String,
    pub detail: String,
}

impl SetupError {
    pub fn new(component: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            detail: detail.into(),
        }
    }
}
