//! Who a profile asks or tells about a user (the manager, else the default recipient, never the
//! user themself), and Manager Information's message queued in the outbox.

use super::*;

/// Who is asked or told: an address of the profile's delivery kind and who it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub address: String,
    /// The manager's name or DN, or "default recipient".
    pub who: String,
    pub source: ApproverSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproverSource {
    /// The LDAP `manager` entry or the local user's sponsor.
    Manager,
    DefaultRecipient,
}

/// The approver and the notes on how it was found (for the audit and `policy test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverLookup {
    pub approver: Option<Approver>,
    pub notes: Vec<String>,
}

impl LoginService {
    /// Who the profile asks or tells about `user`: the manager's address of the profile's
    /// kind, unless it is the user's own; else the default recipient (unless that is the
    /// user's own); else nobody.
    pub async fn approver(
        &self,
        profile: &ApprovalProfile,
        user: &User,
    ) -> Result<ApproverLookup, AuthError> {
        let mut notes = Vec::new();
        let manager = match self.directories.directory_of(user) {
            Ok(dir) => dir.find_manager(user).await,
            Err(e) => Err(crate::ports::DirectoryError::Unavailable {
                directory: user.directory.clone(),
                reason: e.to_string(),
            }),
        };
        let manager = match manager {
            Ok(m) => m,
            // An approval must not fall back to someone else because a lookup failed.
            Err(e) if profile.kind == ProfileKind::Approval => {
                return Err(AuthError::Unavailable(e.to_string()));
            }
            Err(e) => {
                notes.push(format!("manager lookup failed: {e}"));
                None
            }
        };
        let delivery = profile.delivery;
        match &manager {
            None => notes.push("no manager found".to_owned()),
            Some(m) => match delivery.address_of(m) {
                None => notes.push(format!(
                    "manager {} has no {} address",
                    describe_manager(m),
                    delivery.as_str()
                )),
                Some(address) if delivery.belongs_to(&address, user) => {
                    notes.push("the manager's address is the user's own".to_owned());
                }
                Some(address) => {
                    return Ok(ApproverLookup {
                        approver: Some(Approver {
                            address,
                            who: describe_manager(m),
                            source: ApproverSource::Manager,
                        }),
                        notes,
                    });
                }
            },
        }
        let approver = match &profile.default_recipient {
            Some(address) if delivery.belongs_to(address, user) => {
                notes.push("the default recipient is the user's own address".to_owned());
                None
            }
            Some(address) => Some(Approver {
                address: address.clone(),
                who: "default recipient".to_owned(),
                source: ApproverSource::DefaultRecipient,
            }),
            None => {
                notes.push("no default recipient".to_owned());
                None
            }
        };
        Ok(ApproverLookup { approver, notes })
    }

    /// Manager Information: queue the message in the outbox; the login does not wait for it.
    pub(super) async fn inform(
        &self,
        app: &Application,
        profile: &ApprovalProfile,
        user: &User,
        caller: &Caller,
        attempt: &mut Attempt,
    ) -> Result<(), AuthError> {
        let lookup = self.approver(profile, user).await?;
        for note in &lookup.notes {
            attempt.note(note.clone());
        }
        let Some(approver) = lookup.approver else {
            attempt.note("nobody could be informed");
            return Ok(());
        };
        let now = self.clock.now();
        if !profile.inform_interval.is_zero()
            && let Some(last) = self
                .outbox
                .latest_message_about(user.dn.as_str(), &app.name, caller.client.as_deref())
                .await
                .map_err(store_unavailable)?
            && now < last.created_at.plus(profile.inform_interval)
        {
            attempt.recipient(&last.recipient);
            attempt.note(format!(
                "{} was informed at {} (message {}); not repeated within the inform interval",
                approver.who,
                last.created_at.to_rfc3339(),
                last.id
            ));
            return Ok(());
        }
        let values = self.message_values(app, user, caller, now);
        let message = OutboxMessage {
            id: random_hex(self.random.as_ref(), 16),
            profile: profile.name.clone(),
            recipient: approver.address.clone(),
            subject: profile.email_subject.clone(),
            body: profile.message.render(&values),
            about_user: user.dn.to_string(),
            application: app.name.clone(),
            client: caller.client.clone(),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            state: OutboxState::Queued,
            last_error: None,
            sent_at: None,
        };
        self.outbox
            .enqueue_message(&message)
            .await
            .map_err(store_unavailable)?;
        (self.wake_outbox)();
        attempt.recipient(&approver.address);
        attempt.note(format!(
            "{} informed through the outbox (message {})",
            approver.who, message.id
        ));
        Ok(())
    }
}

fn describe_manager(m: &crate::model::Manager) -> String {
    match (&m.name, &m.dn) {
        (Some(name), Some(dn)) => format!("{name} ({dn})"),
        (Some(name), None) => name.clone(),
        (None, Some(dn)) => dn.to_string(),
        (None, None) => "manager".to_owned(),
    }
}
