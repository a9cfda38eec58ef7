//! Approved Authentication's request: within the grace period, join the pending request, or
//! record a new one and send its link, as one piece of work that runs to its end.

use std::sync::Arc;
use std::time::Duration;

use super::*;

impl LoginService {
    /// The newest request of the user for the application that was approved for this client
    /// within the grace period, if any.
    async fn approved_within_grace(
        &self,
        app: &Application,
        user: &User,
        caller: &Caller,
        now: Timestamp,
    ) -> Result<Option<ApprovalRequest>, AuthError> {
        let approved = self
            .approvals
            .list_approvals(&crate::ports::ApprovalQuery {
                state: Some(ApprovalState::Approved),
                user: Some(user.username.clone()),
                application: Some(app.name.clone()),
                limit: 20,
                ..Default::default()
            })
            .await
            .map_err(store_unavailable)?;
        Ok(approved.into_iter().find(|r| {
            r.user == user.key()
                && same_client(r.client.as_deref(), caller.client.as_deref())
                && r.decided_at
                    .is_some_and(|at| now < at.plus(self.rules.grace_period))
        }))
    }

    /// Approved Authentication: grace, join, or a new request with its link sent now.
    pub(super) async fn ask_approval(
        &self,
        app: &Application,
        profile: &ApprovalProfile,
        user: User,
        caller: &Caller,
        attempt: &mut Attempt,
    ) -> Result<LoginOutcome, AuthError> {
        let now = self.clock.now();
        if let Some(outcome) = self.grace_or_join(app, &user, caller, now, attempt).await? {
            return Ok(outcome);
        }
        let lookup = self.approver(profile, &user).await?;
        for note in &lookup.notes {
            attempt.note(note.clone());
        }
        let Some(approver) = lookup.approver else {
            return Err(AuthError::Denied(Denial::ApproverUnreachable));
        };
        let (token, token_hash) = new_link_token(self.random.as_ref());
        let request = ApprovalRequest {
            id: new_login_id(self.random.as_ref()),
            token_hash,
            user: user.key(),
            user_dn: user.dn.to_string(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            application: app.name.clone(),
            profile: profile.name.clone(),
            front: caller.front.as_str().to_owned(),
            client: caller.client.clone(),
            recipient: approver.address.clone(),
            approver: approver.who.clone(),
            created_at: now,
            expires_at: now.plus(profile.link_expiration),
            state: ApprovalState::Pending,
            decided_at: None,
            decided_by: None,
            sent_at: None,
        };
        attempt.recipient(&approver.address);
        let mut values = self.message_values(app, &user, caller, now);
        values.link = profile.link(&token);
        values.expires = request.expires_at;
        let message = OutboundMessage {
            to: approver.address.clone(),
            subject: profile.email_subject.clone(),
            // The link approves the login: as secret as a code.
            body: Secret::new(profile.message.render(&values)),
        };
        let mut tries = 0;
        loop {
            match self.create_and_send(&request, &message, profile).await {
                Created::Sent => break,
                // Another login of the same user and application created one meanwhile: join
                // it. Or the one pending in the store is past its expiry and the expiry job
                // has not marked it yet: mark it now and create ours.
                Created::Conflict if tries == 0 => {
                    tries += 1;
                    if let Some(outcome) =
                        self.grace_or_join(app, &user, caller, now, attempt).await?
                    {
                        return Ok(outcome);
                    }
                    self.expire_due().await?;
                }
                Created::Conflict => {
                    return Err(AuthError::Unavailable(
                        "a concurrent approval request could not be joined".to_owned(),
                    ));
                }
                Created::StoreFailed(e) => return Err(store_unavailable(e)),
                Created::NotSent(e) => {
                    attempt.login_facts().login = Some(request.id.clone());
                    attempt.note(format!(
                        "approval message to {} failed: {e}; request cancelled",
                        approver.address
                    ));
                    return Err(AuthError::Denied(Denial::ApprovalNotSent));
                }
            }
        }
        attempt.login_facts().login = Some(request.id.clone());
        attempt.note(format!(
            "approval requested from {} through {}, link valid until {}",
            approver.who,
            profile.courier_name,
            request.expires_at.to_rfc3339()
        ));
        Ok(LoginOutcome::Pending {
            login: request.id,
            expires_at: request.expires_at,
        })
    }

    /// Records the request and sends its message, as one piece of work that runs to the end
    /// even if the login's caller goes away meanwhile (an LDAP client that unbinds): a request
    /// must never be left pending with no message sent, since every retry would join it. A
    /// message that cannot be sent cancels the request.
    async fn create_and_send(
        &self,
        request: &ApprovalRequest,
        message: &OutboundMessage,
        profile: &ApprovalProfile,
    ) -> Created {
        let work = CreateAndSend {
            request: request.clone(),
            message: message.clone(),
            courier: profile.courier.clone(),
            approvals: self.approvals.clone(),
            signal: self.signal.clone(),
            clock: self.clock.clone(),
        };
        let slot: Arc<std::sync::Mutex<Option<Created>>> = Arc::default();
        let out = slot.clone();
        self.detach
            .detach(Box::pin(async move {
                let created = work.run().await;
                if let Ok(mut out) = out.lock() {
                    *out = Some(created);
                }
            }))
            .await;
        let created = slot.lock().ok().and_then(|mut s| s.take());
        created.unwrap_or_else(|| {
            Created::StoreFailed(StoreError::Unavailable(
                "the approval request task failed".to_owned(),
            ))
        })
    }

    /// Within the grace period after an approval: granted. A request pending: joined.
    async fn grace_or_join(
        &self,
        app: &Application,
        user: &User,
        caller: &Caller,
        now: Timestamp,
        attempt: &mut Attempt,
    ) -> Result<Option<LoginOutcome>, AuthError> {
        let Some(latest) = self
            .approvals
            .latest_approval(&user.key(), &app.name)
            .await
            .map_err(store_unavailable)?
        else {
            return Ok(None);
        };
        match latest.state_at(now) {
            // Only the client that waited for the approval: an approval is not a pass for
            // whoever else has the password.
            ApprovalState::Approved
                if latest
                    .decided_at
                    .is_some_and(|at| now < at.plus(self.rules.grace_period))
                    && same_client(latest.client.as_deref(), caller.client.as_deref()) =>
            {
                attempt.login_facts().login = Some(latest.id.clone());
                attempt.note("admitted within the grace period after an approval");
                Ok(Some(LoginOutcome::Granted {
                    user: Box::new(user.clone()),
                    admitted: Admitted::WithinGrace,
                }))
            }
            ApprovalState::Pending
                if latest.sent_at.is_none() && now >= latest.created_at.plus(UNSENT_AFTER) =>
            {
                // Created, and its message never went out (the server stopped in between):
                // nobody was asked, so nobody will decide. Cancel it and ask anew.
                let cancel = Decision {
                    state: ApprovalState::Cancelled,
                    at: now,
                    by: DecidedBy {
                        channel: "server".to_owned(),
                        operator: Some("approval message never sent".to_owned()),
                        ..DecidedBy::default()
                    },
                };
                self.approvals
                    .decide_approval(&latest.id, &cancel)
                    .await
                    .map_err(store_unavailable)?;
                self.signal.notify(&latest.id);
                attempt.note(format!(
                    "cancelled approval request {} whose message was never sent",
                    latest.id
                ));
                Ok(None)
            }
            // Joining is for the client that is waiting: an approval the manager gives for the
            // sign-in shown on the page must not let in another one from elsewhere.
            ApprovalState::Pending
                if !same_client(latest.client.as_deref(), caller.client.as_deref()) =>
            {
                // This client's own approval, still within its grace, is not undone by a
                // sign-in waiting from elsewhere.
                if let Some(approved) = self.approved_within_grace(app, user, caller, now).await? {
                    attempt.login_facts().login = Some(approved.id);
                    attempt.note("admitted within the grace period after an approval");
                    return Ok(Some(LoginOutcome::Granted {
                        user: Box::new(user.clone()),
                        admitted: Admitted::WithinGrace,
                    }));
                }
                attempt.login_facts().login = Some(latest.id.clone());
                attempt.note(format!(
                    "a sign-in from {} is already waiting for approval",
                    latest.client.as_deref().unwrap_or("an unknown address")
                ));
                Err(AuthError::Denied(Denial::PendingElsewhere))
            }
            ApprovalState::Rejected
                if latest
                    .decided_at
                    .is_some_and(|at| now < at.plus(self.rules.rejection_cooldown)) =>
            {
                attempt.login_facts().login = Some(latest.id.clone());
                attempt.note(format!(
                    "rejected at {}; the approver is not asked again within the cooldown",
                    latest
                        .decided_at
                        .map(Timestamp::to_rfc3339)
                        .unwrap_or_default()
                ));
                Err(AuthError::Denied(Denial::Rejected))
            }
            ApprovalState::Pending => {
                attempt.login_facts().login = Some(latest.id.clone());
                attempt.note("joined the pending approval request");
                Ok(Some(LoginOutcome::Pending {
                    login: latest.id,
                    expires_at: latest.expires_at,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// A pending request whose message has not gone out this long after it was created is taken
/// as never sent: longer than any courier takes to give up (SMTP and SMS timeouts are seconds).
pub const UNSENT_AFTER: Duration = Duration::from_secs(120);

/// What [`LoginService::create_and_send`] came to.
enum Created {
    Sent,
    /// A pending request of the same user and application exists.
    Conflict,
    StoreFailed(StoreError),
    /// The message could not be sent; the request is cancelled.
    NotSent(String),
}

/// The owned inputs of [`LoginService::create_and_send`]'s detached work.
struct CreateAndSend {
    request: ApprovalRequest,
    message: OutboundMessage,
    courier: Arc<dyn crate::ports::Courier>,
    approvals: Arc<dyn ApprovalStore>,
    signal: Arc<dyn DecisionSignal>,
    clock: Arc<dyn Clock>,
}

impl CreateAndSend {
    async fn run(self) -> Created {
        match self.approvals.insert_approval(&self.request).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Created::Conflict,
            Err(e) => return Created::StoreFailed(e),
        }
        let Err(e) = self.courier.send(&self.message).await else {
            if let Err(e) = self
                .approvals
                .mark_approval_sent(&self.request.id, self.clock.now())
                .await
            {
                // Joins wait out the unsent grace below; the message did go out.
                tracing::warn!(error = %e, "could not record that an approval message was sent");
            }
            return Created::Sent;
        };
        let cancel = Decision {
            state: ApprovalState::Cancelled,
            at: self.clock.now(),
            by: DecidedBy {
                channel: "server".to_owned(),
                operator: Some("approval message not delivered".to_owned()),
                ..DecidedBy::default()
            },
        };
        if let Err(e) = self
            .approvals
            .decide_approval(&self.request.id, &cancel)
            .await
        {
            tracing::warn!(error = %e, "could not cancel an approval request whose message failed");
        }
        self.signal.notify(&self.request.id);
        Created::NotSent(e.to_string())
    }
}

/// Whether two client addresses are the same client, as the rate limits count clients (an
/// IPv6 address by its /64).
fn same_client(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => crate::attempt::client_key(a) == crate::attempt::client_key(b),
        (None, None) => true,
        _ => false,
    }
}
