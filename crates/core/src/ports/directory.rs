//! Where users live: a `[[directory]]` (local store, LDAP server).

use async_trait::async_trait;
use thiserror::Error;

use crate::error::Refusal;
use crate::identity::Identity;
use crate::model::{Manager, User};
use crate::secret::Secret;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error("directory {directory} unavailable: {reason}")]
    Unavailable { directory: String, reason: String },
}

/// What an identity lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Box<User>),
    NotFound,
    /// The identity mapper matched more than one entry: refused, as Ping's mappers do.
    Ambiguous,
}

/// Where users live: a `[[directory]]` (local store, LDAP server).
#[async_trait]
pub trait Directory: Send + Sync {
    fn name(&self) -> &str;
    /// Resolves `dn:` directly and `u:` through this directory's identity mapper.
    async fn find_user(&self, identity: &Identity) -> Result<Lookup, DirectoryError>;
    async fn check_password(&self, user: &User, password: &Secret) -> Result<bool, DirectoryError>;
    /// Checks the password and says why the directory refused: `None` when it accepted the
    /// password and raised nothing about the account. A directory server that enforces its own
    /// account policy refuses the bind of a locked, disabled or expired account and may say so
    /// (ppolicy's response control, AD's bind diagnostics): that reason, not "wrong password",
    /// is what the audit must show.
    async fn password_refusal(
        &self,
        user: &User,
        password: &Secret,
    ) -> Result<Option<Refusal>, DirectoryError> {
        let accepted = self.check_password(user, password).await?;
        Ok((!accepted).then_some(Refusal::WrongPassword))
    }
    /// Spends the effort of a password check for nobody, so an unknown user takes as long to
    /// refuse as a wrong password.
    async fn check_password_of_nobody(&self, password: &Secret);
    /// The user's manager: `None` when there is none, or it cannot be used (dangling, outside
    /// the directory's bases, the user themself).
    async fn find_manager(&self, user: &User) -> Result<Option<Manager>, DirectoryError>;
    /// When this directory cannot be reached: stop the fallback chain with "unavailable"
    /// (true, the default: a lower directory must not silently answer for a user it may not
    /// hold) or go on to the next directory (false).
    fn stops_chain_when_unavailable(&self) -> bool {
        true
    }
}
