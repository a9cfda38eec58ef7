//! What the OpenID Connect provider keeps: authorization codes and access tokens (by the
//! SHA-256 of their value, never the value), and the ID-token signing keys (sealed under the
//! server key by the adapter that makes them; the store only holds the bytes).

use async_trait::async_trait;

use super::StoreError;
use crate::model::Timestamp;
use crate::oidc::{AccessGrant, CodeGrant};

/// What [`OidcStore::redeem_code`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The code was unused; it is now marked used, and this caller alone holds it.
    Fresh(CodeGrant),
    /// The code had been redeemed before: a replay (RFC 6749 §4.1.2: the tokens it issued
    /// should be revoked).
    Replayed(CodeGrant),
    /// The code exists but was issued to another client; left as it was.
    OtherClient,
    Unknown,
}

/// An ID-token signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The JWK `kid`.
    pub kid: String,
    pub created_at: Timestamp,
    /// When a newer key replaced it for signing; it is still published until the tokens it
    /// signed have expired.
    pub retired_at: Option<Timestamp>,
    /// The private key, sealed by the adapter (the store never sees it in the clear).
    pub sealed: Vec<u8>,
}

#[async_trait]
pub trait OidcStore: Send + Sync {
    /// Records a code. The flow's earlier code is replaced while it is unredeemed; `Conflict`
    /// when the sign-in `grant.flow` already issued a code that was redeemed: a flow ends in
    /// at most one redeemed code.
    async fn put_code(&self, code_hash: &[u8], grant: &CodeGrant) -> Result<(), StoreError>;
    /// Marks the code used, in one write, and returns it as it was; a second redemption marks
    /// it replayed. A code of another client than `client` is left untouched.
    async fn redeem_code(&self, code_hash: &[u8], client: &str) -> Result<Redeemed, StoreError>;
    /// Records an access token issued from the code `grant.code_hash`; revoked from the start
    /// when that code was replayed meanwhile.
    async fn put_access_token(
        &self,
        token_hash: &[u8],
        grant: &AccessGrant,
    ) -> Result<(), StoreError>;
    /// The token's grant if it exists and was not revoked (expiry is the caller's check).
    async fn access_token(&self, token_hash: &[u8]) -> Result<Option<AccessGrant>, StoreError>;
    /// Revokes every access token issued from the code; returns how many.
    async fn revoke_code_tokens(&self, code_hash: &[u8]) -> Result<usize, StoreError>;
    /// Every signing key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Adds `key` as the signing key; every other unretired key is retired at `key.created_at`.
    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Forgets codes (whose flow also expired) and tokens that expired before `before`, and
    /// keys retired before it.
    async fn prune_oidc(&self, before: Timestamp) -> Result<(), StoreError>;
}
