//! Binds under Approved OTP: a simple bind or an OTP SASL bind is a login of the LDAP front's
//! application. Under an approval profile the bind response is held until the approver decides
//! (up to `[ldap] approval_wait`); past that the bind fails with a diagnostic saying the
//! approval is pending, and a retry after the approval gets in within the grace period. An
//! Unbind or a closed connection cancels the bind: the first factor stops there; recording the
//! request and sending its message finish in any case (the use case runs them detached), so no
//! request is left pending without its message; a held wait is given up and the request stays
//! pending for the next try.

use std::sync::Arc;
use std::time::Duration;

use countersign_core::application::Application;
use countersign_core::attempt::Caller;
use countersign_core::login::{LoginOutcome, LoginService, LoginStatus};
use countersign_core::otp::VerifyRequest;
use countersign_core::{AuthError, Secret, User};
use ldap3_proto::proto::LdapResultCode;

use super::handler::{BoundUser, Outcome, bind_outcome, bind_result, result};

/// What the LDAP front needs for logins: the use case, the application it serves
/// (`[ldap] application`, or the implicit `ldap` one) and how long a bind may be held.
#[derive(Clone)]
pub struct LdapLogin {
    pub service: Arc<LoginService>,
    pub application: Application,
    pub approval_wait: Duration,
}

/// What a login comes to, for a bind.
enum Credentials {
    Password(String, Secret),
    Otp(VerifyRequest),
}

impl LdapLogin {
    pub(super) async fn password_bind(
        &self,
        id: i32,
        identity: String,
        password: Secret,
        caller: Caller,
    ) -> Outcome {
        self.bind(id, Credentials::Password(identity, password), caller)
            .await
    }

    pub(super) async fn otp_bind(
        &self,
        id: i32,
        request: VerifyRequest,
        caller: Caller,
    ) -> Outcome {
        self.bind(id, Credentials::Otp(request), caller).await
    }

    async fn bind(&self, id: i32, credentials: Credentials, caller: Caller) -> Outcome {
        let app = &self.application;
        // A closed connection drops this future: the first factor stops there; what must not
        // stop half-way (recording a request and sending its message) runs detached in the
        // use case.
        let outcome = match credentials {
            Credentials::Password(identity, password) => {
                self.service
                    .login_password(app, &identity, &password, &caller)
                    .await
            }
            Credentials::Otp(request) => self.service.login_otp(app, request, &caller).await,
        };
        match outcome {
            Ok(LoginOutcome::Granted { user, .. }) => bind_outcome(id, Ok(*user)),
            Ok(LoginOutcome::Pending { login, expires_at }) => {
                self.held(id, &login, expires_at).await
            }
            Err(e) => bind_outcome(id, Err::<User, _>(e)),
        }
    }

    /// Holds the bind until the decision, the link's expiry or `approval_wait`.
    async fn held(
        &self,
        id: i32,
        login: &str,
        expires_at: countersign_core::model::Timestamp,
    ) -> Outcome {
        let until = self
            .service
            .clock
            .now()
            .plus(self.approval_wait)
            .min(expires_at);
        let status = self
            .service
            .wait(&self.application.name, login, until)
            .await;
        match status {
            Ok(LoginStatus::Granted { user_dn, .. }) => {
                let request = self.service.approvals.approval(login).await.ok().flatten();
                match request {
                    Some(r) => Outcome::Bind {
                        bound: Some(BoundUser {
                            key: r.user,
                            dn: user_dn,
                        }),
                        response: bind_result(id, result(LdapResultCode::Success, "")),
                    },
                    None => bind_outcome(
                        id,
                        Err::<User, _>(AuthError::Unavailable("the approval vanished".into())),
                    ),
                }
            }
            Ok(LoginStatus::Pending { expires_at }) => Outcome::Bind {
                bound: None,
                response: bind_result(
                    id,
                    result(
                        LdapResultCode::InvalidCredentials,
                        format!(
                            "login pending: waiting for the approver's decision (request valid until {}); bind again once it is approved",
                            expires_at.to_rfc3339()
                        ),
                    ),
                ),
            },
            Ok(LoginStatus::Denied(denial)) => {
                bind_outcome(id, Err::<User, _>(AuthError::Denied(denial)))
            }
            Err(e) => bind_outcome(id, Err::<User, _>(e)),
        }
    }
}
