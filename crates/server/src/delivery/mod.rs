//! Couriers behind the core's `Courier` port: SMTP (lettre), HTTP SMS gateways (reqwest) and a
//! file/terminal courier for the demo and development.

pub mod file;
pub mod outbox;
pub mod sms;
pub mod smtp;

pub use file::FileCourier;
pub use outbox::OutboxWorker;
pub use sms::SmsCourier;
pub use smtp::SmtpCourier;
