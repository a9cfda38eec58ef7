//! E-mail through an SMTP server: plain, STARTTLS (required, never opportunistic) or implicit
//! TLS, with optional authentication and a timeout on every exchange.

use async_trait::async_trait;
use countersign_core::ports::{Courier, DeliveryError, OutboundMessage};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailProfile, Tls};

pub struct SmtpCourier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    profile: String,
    timeout: std::time::Duration,
}

impl SmtpCourier {
    pub fn new(profile: &MailProfile) -> Result<Self, String> {
        let from: Mailbox = profile
            .from
            .parse()
            .map_err(|e| format!("mail_profile {}: from: {e}", profile.name))?;
        let tls = match profile.tls {
            Tls::None => SmtpTls::None,
            Tls::StartTls | Tls::Implicit => {
                let mut params = TlsParameters::builder(profile.host.clone());
                if let Some(pem) = &profile.ca_pem {
                    let cert = Certificate::from_pem(pem)
                        .map_err(|e| format!("mail_profile {}: ca_file: {e}", profile.name))?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| format!("mail_profile {}: TLS: {e}", profile.name))?;
                if profile.tls == Tls::Implicit {
                    SmtpTls::Wrapper(params)
                } else {
                    SmtpTls::Required(params)
                }
            }
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(profile.host.clone())
                .port(profile.port)
                .tls(tls)
                .timeout(Some(profile.timeout));
        if let Some((user, password)) = &profile.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            profile: profile.name.clone(),
            timeout: profile.timeout,
        })
    }
}

#[async_trait]
impl Courier for SmtpCourier {
    async fn send(&self, message: &OutboundMessage) -> Result<(), DeliveryError> {
        let to: Mailbox = message.to.parse().map_err(|_| {
            DeliveryError::Failed("the recipient is not a valid e-mail address".into())
        })?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.expose().to_owned())
            .map_err(|e| DeliveryError::Failed(format!("cannot build the message: {e}")))?;
        // lettre's timeout covers each command; bound the whole exchange too.
        let overall = self.timeout.saturating_mul(3);
        match tokio::time::timeout(overall, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(DeliveryError::Failed(format!(
                "SMTP ({}): {e}",
                self.profile
            ))),
            Err(_) => Err(DeliveryError::Failed(format!(
                "SMTP ({}): timed out",
                self.profile
            ))),
        }
    }
}
