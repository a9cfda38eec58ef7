//! The capabilities the core needs from the outside world, as small traits. Adapters in the
//! server crate implement them for real (SQLite, directories, SMTP, SMS gateways); tests use the
//! in-memory fakes in `testkit`.

mod approvals;
mod clock;
mod courier;
mod directory;
pub mod oidc;
mod store;

pub use approvals::{
    ApprovalQuery, ApprovalStore, DecideOutcome, DecisionSignal, Detach, OutboxStore, Subscription,
    Work,
};
pub use clock::{Clock, Random};
pub use courier::{Courier, DeliveryError, OutboundMessage};
pub use directory::{Directory, DirectoryError, Lookup};
pub use store::{AuditStore, IssuedOtp, LocalUser, LocalUserStore, OtpStore, Store, StoreError};
