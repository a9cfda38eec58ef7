//! The OpenID Connect store port in memory, with the store's rules: a code is redeemed once,
//! one code per flow, revocation by code.

use async_trait::async_trait;

use super::MemStore;
use crate::model::Timestamp;
use crate::oidc::{AccessGrant, CodeGrant};
use crate::ports::StoreError;
use crate::ports::oidc::{OidcStore, Redeemed, SigningKeyRecord};

#[derive(Default)]
pub struct MemOidc {
    /// (code hash, grant, used)
    pub codes: Vec<(Vec<u8>, CodeGrant, bool)>,
    /// (token hash, grant, revoked)
    pub tokens: Vec<(Vec<u8>, AccessGrant, bool)>,
    pub keys: Vec<SigningKeyRecord>,
    /// Hashes of codes presented more than once.
    pub replayed: Vec<Vec<u8>>,
}

#[async_trait]
impl OidcStore for MemStore {
    async fn put_code(&self, code_hash: &[u8], grant: &CodeGrant) -> Result<(), StoreError> {
        let mut o = self.oidc.lock().unwrap();
        if o.codes
            .iter()
            .any(|(_, g, used)| g.flow == grant.flow && *used)
        {
            return Err(StoreError::Conflict("the flow's code was redeemed".into()));
        }
        o.codes.retain(|(_, g, _)| g.flow != grant.flow);
        o.codes.push((code_hash.to_vec(), grant.clone(), false));
        Ok(())
    }

    async fn redeem_code(&self, code_hash: &[u8], client: &str) -> Result<Redeemed, StoreError> {
        let mut o = self.oidc.lock().unwrap();
        let Some((_, grant, used)) = o.codes.iter_mut().find(|(h, _, _)| h == code_hash) else {
            return Ok(Redeemed::Unknown);
        };
        if grant.client != client {
            return Ok(Redeemed::OtherClient);
        }
        let was_used = std::mem::replace(used, true);
        let grant = grant.clone();
        if was_used {
            o.replayed.push(code_hash.to_vec());
            return Ok(Redeemed::Replayed(grant));
        }
        Ok(Redeemed::Fresh(grant))
    }

    async fn put_access_token(
        &self,
        token_hash: &[u8],
        grant: &AccessGrant,
    ) -> Result<(), StoreError> {
        let mut o = self.oidc.lock().unwrap();
        let revoked = o.replayed.contains(&grant.code_hash);
        o.tokens.push((token_hash.to_vec(), grant.clone(), revoked));
        Ok(())
    }

    async fn access_token(&self, token_hash: &[u8]) -> Result<Option<AccessGrant>, StoreError> {
        let o = self.oidc.lock().unwrap();
        Ok(o.tokens
            .iter()
            .find(|(h, _, revoked)| h == token_hash && !revoked)
            .map(|(_, g, _)| g.clone()))
    }

    async fn revoke_code_tokens(&self, code_hash: &[u8]) -> Result<usize, StoreError> {
        let mut o = self.oidc.lock().unwrap();
        let mut n = 0;
        for (_, g, revoked) in &mut o.tokens {
            if g.code_hash == code_hash && !*revoked {
                *revoked = true;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        Ok(self.oidc.lock().unwrap().keys.clone())
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut o = self.oidc.lock().unwrap();
        for k in &mut o.keys {
            k.retired_at.get_or_insert(key.created_at);
        }
        o.keys.push(key.clone());
        Ok(())
    }

    async fn prune_oidc(&self, before: Timestamp) -> Result<(), StoreError> {
        let mut o = self.oidc.lock().unwrap();
        o.codes
            .retain(|(_, g, _)| g.expires_at.max(g.flow_expires_at) >= before);
        o.tokens.retain(|(_, g, _)| g.expires_at >= before);
        o.keys.retain(|k| k.retired_at.is_none_or(|r| r >= before));
        Ok(())
    }
}
