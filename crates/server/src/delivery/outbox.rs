//! The outbox worker: sends the messages that Manager Information logins queued, through the
//! courier of the approval profile that queued them. A login never waits for it. Messages are
//! claimed in the store with a lease before they are sent, so a worker that dies (`kill -9`)
//! leaves them to be claimed again when the lease runs out; a message sent just before such a
//! crash may go out twice, never zero times. A failed try is retried with capped exponential
//! backoff until the message is older than the schedule allows; then it is marked failed and an
//! operator can see and retry it (`countersign outbox`). Every send, retry and give-up is in
//! the audit trail.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use countersign_core::attempt::{Attempt, AuditTrail, Caller};
use countersign_core::audit::AuditAction;
use countersign_core::error::{AuthError, Undelivered};
use countersign_core::outbox::{AfterFailure, OutboxMessage, RetrySchedule};
use countersign_core::ports::{Clock, Courier, OutboundMessage, OutboxStore};
use countersign_core::secret::Secret;
use futures_util::future::join_all;
use tokio::sync::{Notify, watch};

/// Messages claimed per pass; sent concurrently.
const BATCH: usize = 32;
/// The shortest time a claimed message is kept from other workers; the wiring makes it longer
/// when a courier's own timeouts could outlast it.
pub const MIN_LEASE: Duration = Duration::from_secs(120);
/// How often the store is looked at when nobody rang.
const LOOK_EVERY: Duration = Duration::from_secs(1);

pub struct OutboxWorker {
    pub store: Arc<dyn OutboxStore>,
    /// The courier of each approval profile, by profile name.
    pub couriers: HashMap<String, Arc<dyn Courier>>,
    pub schedule: RetrySchedule,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditTrail,
    /// Rung by a login that queued a message.
    pub wake: Arc<Notify>,
    /// How long a claim keeps a message from other workers: longer than any send can take, or
    /// a slow send would be claimed and sent again while it runs.
    pub lease: Duration,
}

impl OutboxWorker {
    /// Runs until `stop`; the pass in progress finishes first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            // Keep going while passes find work; then wait for a ring, the tick or the stop.
            while self.pass().await == BATCH && !*stop.borrow() {}
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(LOOK_EVERY) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One pass: claims what is due and tries each. Returns how many were claimed.
    pub async fn pass(&self) -> usize {
        let now = self.clock.now();
        let due = match self
            .store
            .claim_due_messages(now, now.plus(self.lease), BATCH)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "the outbox could not be read");
                return 0;
            }
        };
        let claimed = due.len();
        join_all(due.into_iter().map(|m| self.try_send(m))).await;
        claimed
    }

    async fn try_send(&self, message: OutboxMessage) {
        let sent = match self.couriers.get(&message.profile) {
            None => Err(format!(
                "approval profile {:?} is no longer configured",
                message.profile
            )),
            Some(courier) => courier
                .send(&OutboundMessage {
                    to: message.recipient.clone(),
                    subject: message.subject.clone(),
                    body: Secret::new(message.body.clone()),
                })
                .await
                .map_err(|e| e.to_string()),
        };
        let now = self.clock.now();
        let attempts = message.attempts.saturating_add(1);
        let mut attempt = message_attempt(&message);
        let result = match &sent {
            Ok(()) => {
                attempt.note(format!("sent on try {attempts}"));
                self.store.mark_message_sent(&message.id, now).await
            }
            Err(error) => {
                attempt.mechanism_failed(
                    &message.profile,
                    &format!("to {}: {error}", message.recipient),
                );
                match self
                    .schedule
                    .after_failure(message.created_at, attempts, now)
                {
                    AfterFailure::RetryAt(at) => {
                        attempt.note(format!(
                            "try {attempts} failed; next try at {}",
                            at.to_rfc3339()
                        ));
                        self.store
                            .mark_message_retry(&message.id, attempts, at, error)
                            .await
                    }
                    AfterFailure::GiveUp => {
                        attempt.note(format!("given up after {attempts} tries"));
                        self.store
                            .mark_message_failed(&message.id, attempts, error)
                            .await
                    }
                }
            }
        };
        if let Err(e) = result {
            // The lease runs out and the message is tried again: at worst sent twice.
            tracing::warn!(error = %e, message = %message.id, "outbox state could not be recorded");
        }
        let outcome: Result<(), AuthError> = match sent {
            Ok(()) => Ok(()),
            Err(_) => Err(AuthError::NotDelivered {
                tried: vec![(message.profile.clone(), Undelivered::TransportFailed)],
            }),
        };
        self.audit.record(attempt, &outcome).await;
    }
}

/// The audit attempt of one try of `message`: about its user, for its application and profile.
fn message_attempt(message: &OutboxMessage) -> Attempt {
    let mut attempt = Attempt::new(
        AuditAction::Message,
        &Caller {
            front: countersign_core::attempt::Front::Server,
            ..Caller::default()
        },
        &format!("dn:{}", message.about_user),
    );
    let facts = attempt.login_facts();
    facts.application = Some(message.application.clone());
    facts.profile = Some(message.profile.clone());
    attempt.recipient(&message.recipient);
    attempt
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::audit::AuditOutcome;
    use countersign_core::model::Timestamp;
    use countersign_core::outbox::OutboxState;
    use countersign_core::testkit::{MemApprovals, MemStore, RecordingCourier, T0, TestClock};

    fn message(id: &str, profile: &str) -> OutboxMessage {
        OutboxMessage {
            id: id.into(),
            profile: profile.into(),
            recipient: "boss@example.com".into(),
            subject: "Sign-in notice".into(),
            body: "alice signed in".into(),
            about_user: "uid=alice,dc=x".into(),
            application: "vpn".into(),
            client: None,
            created_at: Timestamp(T0),
            attempts: 0,
            next_attempt_at: Timestamp(T0),
            state: OutboxState::Queued,
            last_error: None,
            sent_at: None,
        }
    }

    struct Rig {
        worker: OutboxWorker,
        outbox: Arc<MemApprovals>,
        audit: Arc<MemStore>,
        clock: Arc<TestClock>,
        courier: Arc<RecordingCourier>,
    }

    fn rig(fail: bool) -> Rig {
        let outbox = Arc::new(MemApprovals::default());
        let audit = Arc::new(MemStore::default());
        let clock = Arc::new(TestClock::at(T0));
        let courier = Arc::new(RecordingCourier {
            fail,
            ..Default::default()
        });
        let worker = OutboxWorker {
            store: outbox.clone(),
            couriers: HashMap::from([("inform".to_owned(), courier.clone() as Arc<dyn Courier>)]),
            schedule: RetrySchedule {
                first_delay: Duration::from_secs(5),
                max_delay: Duration::from_secs(60),
                give_up_after: Duration::from_secs(600),
            },
            clock: clock.clone(),
            audit: AuditTrail::new(audit.clone(), clock.clone()),
            wake: Arc::new(Notify::new()),
            lease: MIN_LEASE,
        };
        Rig {
            worker,
            outbox,
            audit,
            clock,
            courier,
        }
    }

    #[tokio::test]
    async fn a_due_message_is_sent_once_and_audited() {
        let r = rig(false);
        r.outbox
            .messages
            .lock()
            .unwrap()
            .push(message("m1", "inform"));
        assert_eq!(r.worker.pass().await, 1);
        assert_eq!(
            r.worker.pass().await,
            0,
            "sent messages are not claimed again"
        );
        let sent = r.courier.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].to.as_str(), sent[0].body.expose()),
            ("boss@example.com", "alice signed in")
        );
        let m = r.outbox.messages.lock().unwrap()[0].clone();
        assert_eq!((m.state, m.attempts), (OutboxState::Sent, 1));
        let audit = r.audit.audit.lock().unwrap().clone();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].action, AuditAction::Message);
        assert_eq!(
            audit[0].front, "server",
            "the server's own work, not a client's"
        );
        assert_eq!(audit[0].outcome, AuditOutcome::Success);
        assert_eq!(audit[0].recipient.as_deref(), Some("boss@example.com"));
        assert_eq!(audit[0].login.profile.as_deref(), Some("inform"));
    }

    #[tokio::test]
    async fn failures_back_off_then_give_up_and_the_message_stays_visible() {
        let r = rig(true);
        r.outbox
            .messages
            .lock()
            .unwrap()
            .push(message("m1", "inform"));
        assert_eq!(r.worker.pass().await, 1);
        let m = r.outbox.messages.lock().unwrap()[0].clone();
        assert_eq!((m.state, m.attempts), (OutboxState::Queued, 1));
        assert_eq!(m.next_attempt_at, Timestamp(T0 + 5_000));
        assert!(m.last_error.unwrap().contains("connection refused"));
        // Not due yet: nothing claimed.
        assert_eq!(r.worker.pass().await, 0);
        r.clock.advance(Duration::from_secs(5));
        assert_eq!(r.worker.pass().await, 1);
        assert_eq!(
            r.outbox.messages.lock().unwrap()[0].next_attempt_at,
            Timestamp(T0 + 15_000)
        );
        // Past the age limit the next failure gives up.
        r.clock.advance(Duration::from_secs(600));
        assert_eq!(r.worker.pass().await, 1);
        let m = r.outbox.messages.lock().unwrap()[0].clone();
        assert_eq!((m.state, m.attempts), (OutboxState::Failed, 3));
        let audit = r.audit.audit.lock().unwrap().clone();
        assert_eq!(audit.len(), 3);
        assert!(audit.iter().all(|a| a.outcome == AuditOutcome::Failure));
        assert!(
            audit[2].reason.contains("given up after 3 tries"),
            "{}",
            audit[2].reason
        );
        assert!(
            audit[0].reason.contains("next try at"),
            "{}",
            audit[0].reason
        );
    }

    #[tokio::test]
    async fn a_message_of_a_profile_no_longer_configured_fails_without_sending() {
        let r = rig(false);
        r.outbox
            .messages
            .lock()
            .unwrap()
            .push(message("m1", "gone"));
        r.worker.pass().await;
        assert!(r.courier.sent.lock().unwrap().is_empty());
        let m = r.outbox.messages.lock().unwrap()[0].clone();
        assert!(m.last_error.unwrap().contains("no longer configured"));
    }
}
