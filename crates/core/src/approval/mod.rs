//! Approved OTP (SecTrail's "manager-approved login"): approval [`profile`]s, the [`policy`]
//! list that picks one per user, and approval [`request`]s with their state machine. The login
//! use case that puts them together is [`crate::login`].

pub mod policy;
pub mod profile;
pub mod request;

pub use policy::{Policies, Policy, PolicyChoice, ValuePattern};
pub use profile::{ApprovalDelivery, ApprovalProfile, MessageTemplate, MessageValues, ProfileKind};
pub use request::{ApprovalRequest, ApprovalState, DecidedBy, Decision};
