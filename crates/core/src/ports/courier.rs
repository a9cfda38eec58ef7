//! Couriers: one message to one address over one transport.

use async_trait::async_trait;
use thiserror::Error;

use crate::secret::Secret;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// The transport did not take the message (connection refused, timeout, rejected). The text
    /// may name the server; it never holds the message body.
    #[error("{0}")]
    Failed(String),
}

/// A message for one recipient. The body holds the OTP, hence a [`Secret`].
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub to: String,
    pub subject: String,
    pub body: Secret,
}

/// Takes a message to one address over one transport (SMTP, SMS gateway, file).
#[async_trait]
pub trait Courier: Send + Sync {
    async fn send(&self, message: &OutboundMessage) -> Result<(), DeliveryError>;
}
