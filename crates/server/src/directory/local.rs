//! The local directory: users kept in countersign's own store, with argon2id password hashes.
//! Its identity mapper matches `u:` identities against the configured attributes (default
//! `uid`, the username) and requires exactly one match, like Ping's Exact Match Identity Mapper.

use std::sync::Arc;

use async_trait::async_trait;
use countersign_core::Secret;
use countersign_core::identity::Identity;
use countersign_core::model::{Dn, Manager, User};
use countersign_core::ports::{Directory, DirectoryError, LocalUserStore, Lookup, StoreError};

use crate::config::LocalDirectoryConfig;
use crate::passwords;

pub struct LocalDirectory {
    config: LocalDirectoryConfig,
    store: Arc<dyn LocalUserStore>,
    dummy_hash: Arc<String>,
}

impl LocalDirectory {
    pub fn new(config: LocalDirectoryConfig, store: Arc<dyn LocalUserStore>) -> Self {
        Self {
            config,
            store,
            dummy_hash: Arc::new(passwords::dummy_hash()),
        }
    }

    pub fn config(&self) -> &LocalDirectoryConfig {
        &self.config
    }

    /// The DN a local user with this username gets.
    pub fn dn_for(&self, username: &str) -> Dn {
        Dn::new(format!(
            "uid={},{}",
            escape_dn_value(username),
            self.config.base_dn
        ))
    }

    fn unavailable(&self, e: StoreError) -> DirectoryError {
        DirectoryError::Unavailable {
            directory: self.config.name.clone(),
            reason: e.to_string(),
        }
    }
}

/// RFC 4514 §2.4 escaping of an attribute value inside a DN.
pub fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i + 1 == v.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl Directory for LocalDirectory {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn find_user(&self, identity: &Identity) -> Result<Lookup, DirectoryError> {
        match identity {
            Identity::Dn(dn) => {
                if !dn.is_within(&Dn::new(self.config.base_dn.clone())) {
                    return Ok(Lookup::NotFound);
                }
                let found = self
                    .store
                    .local_user_by_dn(&self.config.name, &dn.normalized())
                    .await
                    .map_err(|e| self.unavailable(e))?;
                Ok(found.map_or(Lookup::NotFound, |u| Lookup::Found(Box::new(u.user))))
            }
            Identity::Username(name) => {
                let mut found: Vec<User> = Vec::new();
                for attribute in &self.config.match_attributes {
                    let users = self
                        .store
                        .local_users_matching(&self.config.name, attribute, name)
                        .await
                        .map_err(|e| self.unavailable(e))?;
                    for u in users {
                        if !found
                            .iter()
                            .any(|f| f.username.eq_ignore_ascii_case(&u.user.username))
                        {
                            found.push(u.user);
                        }
                    }
                }
                Ok(match found.len() {
                    0 => Lookup::NotFound,
                    1 => Lookup::Found(Box::new(found.remove(0))),
                    _ => Lookup::Ambiguous,
                })
            }
        }
    }

    async fn check_password(&self, user: &User, password: &Secret) -> Result<bool, DirectoryError> {
        let stored = self
            .store
            .local_user(&self.config.name, &user.username)
            .await
            .map_err(|e| self.unavailable(e))?;
        let Some(stored) = stored else {
            // Deleted between lookup and check: spend the same effort, then refuse.
            passwords::verify_async(password, &self.dummy_hash).await;
            return Ok(false);
        };
        Ok(passwords::verify_async(password, &stored.password_hash).await)
    }

    async fn check_password_of_nobody(&self, password: &Secret) {
        passwords::verify_async(password, &self.dummy_hash).await;
    }

    /// The sponsor stands in for the manager of a local user.
    async fn find_manager(&self, user: &User) -> Result<Option<Manager>, DirectoryError> {
        Ok(user
            .sponsor
            .as_ref()
            .filter(|s| s.name.is_some() || s.email.is_some() || s.phone.is_some())
            .map(|s| Manager {
                dn: None,
                name: s.name.clone(),
                mail: s.email.clone(),
                mobile: s.phone.clone(),
            }))
    }
}
