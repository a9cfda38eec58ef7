//! The identity mapper: an ordered chain of fallback directories, as a value. Deliver OTP and
//! password binds use the `[deliver_otp]` chain today; approval profiles will each carry their
//! own. It finds the user an identity names (the first directory that has the user decides),
//! knows which directory a user came from, spends a password check for nobody, decides whether
//! a user may assume an authorization identity, and asks for a user's manager.

use std::sync::Arc;

use crate::error::{AuthError, Refusal};
use crate::identity::Identity;
use crate::model::{Manager, User};
use crate::ports::{Directory, DirectoryError, Lookup};
use crate::secret::Secret;

#[derive(Clone, Default)]
pub struct IdentityMapper {
    directories: Vec<Arc<dyn Directory>>,
}

impl std::fmt::Debug for IdentityMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.directories.iter().map(|d| d.name()))
            .finish()
    }
}

impl IdentityMapper {
    /// `directories` in fallback order.
    pub fn new(directories: Vec<Arc<dyn Directory>>) -> Self {
        Self { directories }
    }

    pub fn directories(&self) -> &[Arc<dyn Directory>] {
        &self.directories
    }

    /// The first directory that has the user decides; an ambiguous match is refused; an
    /// unreachable directory stops the chain unless it says otherwise (no silent fall-through
    /// to a lower directory that may hold a namesake).
    pub async fn find_user(&self, identity: &Identity) -> Result<Option<User>, AuthError> {
        for dir in &self.directories {
            let found = match dir.find_user(identity).await {
                Ok(found) => found,
                Err(e) if dir.stops_chain_when_unavailable() => return Err(unavailable(e)),
                Err(e) => {
                    tracing::warn!(directory = dir.name(), error = %e, "directory unavailable; trying the next");
                    continue;
                }
            };
            match found {
                Lookup::Found(user) => return Ok(Some(*user)),
                Lookup::Ambiguous => {
                    return Err(AuthError::InvalidCredentials(Refusal::AmbiguousUser));
                }
                Lookup::NotFound => {}
            }
        }
        Ok(None)
    }

    /// The directory `user` was found in.
    pub fn directory_of(&self, user: &User) -> Result<&Arc<dyn Directory>, AuthError> {
        self.directories
            .iter()
            .find(|d| d.name() == user.directory)
            .ok_or_else(|| {
                AuthError::Unavailable(format!("directory {} is not configured", user.directory))
            })
    }

    /// Checks `password` in the user's own directory: `None` when accepted, else the real
    /// reason (a wrong password, or the account state the directory server enforced on the
    /// bind).
    pub async fn password_refusal(
        &self,
        user: &User,
        password: &Secret,
    ) -> Result<Option<Refusal>, AuthError> {
        self.directory_of(user)?
            .password_refusal(user, password)
            .await
            .map_err(unavailable)
    }

    /// Spends the effort of a password check for nobody, so an unknown user takes as long to
    /// refuse as a wrong password.
    pub async fn check_password_of_nobody(&self, password: Option<&Secret>) {
        if let (Some(pw), Some(dir)) = (password, self.directories.first()) {
            dir.check_password_of_nobody(pw).await;
        }
    }

    /// Whether `user` may act as the authorization identity `authz` (only their own, for now).
    pub async fn may_assume(&self, user: &User, authz: &str) -> Result<bool, AuthError> {
        let identity = match Identity::parse(authz) {
            Ok(identity) => identity,
            // `dn:` alone is the anonymous identity: not the user's own.
            Err(_) if authz.trim().eq_ignore_ascii_case("dn:") => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(match identity {
            Identity::Dn(dn) => dn.normalized() == user.dn.normalized(),
            Identity::Username(_) => match self.find_user(&identity).await? {
                Some(other) => other.key() == user.key(),
                None => false,
            },
        })
    }

    /// The manager of the user an identity names, from the user's own directory (for approval
    /// profiles; `None` when there is no usable manager).
    pub async fn manager_of(&self, authentication_id: &str) -> Result<Option<Manager>, AuthError> {
        let identity = Identity::parse(authentication_id)?;
        let user = self
            .find_user(&identity)
            .await?
            .ok_or(AuthError::NoSuchUser)?;
        self.directory_of(&user)?
            .find_manager(&user)
            .await
            .map_err(unavailable)
    }
}

pub(crate) fn unavailable(e: DirectoryError) -> AuthError {
    AuthError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dn;
    use crate::testkit::{MemDirectory, alice};

    fn dir(name: &str, users: Vec<User>) -> Arc<dyn Directory> {
        Arc::new(MemDirectory::new(name, users))
    }

    #[tokio::test]
    async fn the_first_directory_that_has_the_user_decides() {
        let mut corp_alice = alice();
        corp_alice.directory = "corp".into();
        let mapper = IdentityMapper::new(vec![
            dir("local", vec![]),
            dir("corp", vec![corp_alice]),
            dir("other", vec![alice()]),
        ]);
        let found = mapper
            .find_user(&Identity::Username("alice".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.directory, "corp");
        assert_eq!(mapper.directory_of(&found).unwrap().name(), "corp");
        assert_eq!(
            mapper
                .password_refusal(&found, &"secret".into())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            mapper
                .password_refusal(&found, &"wrong".into())
                .await
                .unwrap(),
            Some(Refusal::WrongPassword)
        );
        let mut stray = alice();
        stray.directory = "gone".into();
        assert!(matches!(
            mapper.directory_of(&stray),
            Err(AuthError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_user_may_assume_only_their_own_identity() {
        let mapper = IdentityMapper::new(vec![dir("local", vec![alice()])]);
        let a = alice();
        for (authz, ok) in [
            ("dn:UID=alice, ou=people,dc=example,dc=com", true),
            ("u:alice", true),
            ("dn:uid=bob,ou=people,dc=example,dc=com", false),
            ("u:bob", false),
            ("dn:", false),
        ] {
            assert_eq!(mapper.may_assume(&a, authz).await.unwrap(), ok, "{authz}");
        }
        assert_eq!(
            mapper.manager_of("u:nobody").await.unwrap_err(),
            AuthError::NoSuchUser
        );
        assert_eq!(mapper.manager_of("u:alice").await.unwrap(), None);
        assert_eq!(a.dn, Dn::new("uid=alice,ou=people,dc=example,dc=com"));
    }
}
