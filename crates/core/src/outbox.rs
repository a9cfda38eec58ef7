//! The outbox: messages to managers that must not be lost and must not hold up a login. A
//! Manager Information login queues its message in the store and returns; a background worker
//! sends what is due, retrying with capped exponential backoff, and gives a message up as
//! failed once it is older than the configured age (then an operator sees it and may retry it).

use std::time::Duration;

use crate::model::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Waiting to be sent (first try, or a retry at `next_attempt_at`).
    Queued,
    Sent,
    /// Given up: too old. `countersign outbox retry` queues it again.
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [OutboxState::Queued, OutboxState::Sent, OutboxState::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One message to one recipient. Information messages carry no secret, so the body is kept as
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Random, hex.
    pub id: String,
    /// The approval profile that sends it: its courier carries it.
    pub profile: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// The login it tells about, for the audit: user DN and application.
    pub about_user: String,
    pub application: String,
    /// The address the login it tells about came from.
    pub client: Option<String>,
    pub created_at: Timestamp,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub state: OutboxState,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
}

/// When to try again, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Wait after the first failure; doubled after each further one.
    pub first_delay: Duration,
    /// The longest wait between tries.
    pub max_delay: Duration,
    /// A message older than this is given up as failed.
    pub give_up_after: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(Timestamp),
    GiveUp,
}

impl RetrySchedule {
    /// After the `attempts`-th failed try (1 for the first) of a message created at
    /// `created_at`, failing at `now`.
    pub fn after_failure(
        &self,
        created_at: Timestamp,
        attempts: u32,
        now: Timestamp,
    ) -> AfterFailure {
        if now >= created_at.plus(self.give_up_after) {
            return AfterFailure::GiveUp;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        let delay = self
            .first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        AfterFailure::RetryAt(now.plus(delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_gives_up_with_age() {
        let s = RetrySchedule {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            give_up_after: Duration::from_secs(100),
        };
        let t0 = Timestamp(0);
        let at = |n: u32, now_s: i64| s.after_failure(t0, n, Timestamp(now_s * 1000));
        assert_eq!(at(1, 0), AfterFailure::RetryAt(Timestamp(1000)));
        assert_eq!(at(2, 1), AfterFailure::RetryAt(Timestamp(3000)));
        assert_eq!(at(3, 3), AfterFailure::RetryAt(Timestamp(7000)));
        assert_eq!(at(4, 7), AfterFailure::RetryAt(Timestamp(15_000)));
        assert_eq!(
            at(5, 15),
            AfterFailure::RetryAt(Timestamp(25_000)),
            "capped at 10 s"
        );
        assert_eq!(
            at(60, 50),
            AfterFailure::RetryAt(Timestamp(60_000)),
            "no overflow"
        );
        assert_eq!(at(9, 100), AfterFailure::GiveUp);
    }
}
