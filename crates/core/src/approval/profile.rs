//! Approval profiles (the seed's "Approved OTP profiles"): what happens after a user proved who
//! they are. *Information* lets the login through and tells the manager; *approval* holds it
//! until the manager decides through a link. The profile says how the manager is reached (the
//! delivery method and its mail or SMS profile, the subject, the default recipient), what the
//! message says, how long the link is valid, which directories authenticate its users and which
//! authentication methods it governs.

use std::sync::Arc;
use std::time::Duration;

use crate::application::AuthMethod;
use crate::model::{Manager, Timestamp, User};
use crate::ports::Courier;

/// The seed's two profile types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    /// Manager Information: the login goes through; the manager is informed.
    Information,
    /// Approved Authentication: the login waits for the manager's decision.
    Approval,
}

impl ProfileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Information => "information",
            ProfileKind::Approval => "approval",
        }
    }
}

/// How the manager is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalDelivery {
    Email,
    Sms,
}

impl ApprovalDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalDelivery::Email => "email",
            ApprovalDelivery::Sms => "sms",
        }
    }

    /// The manager's address of this kind: their mail or their mobile.
    pub fn address_of(self, manager: &Manager) -> Option<String> {
        let address = match self {
            ApprovalDelivery::Email => manager.mail.as_deref(),
            ApprovalDelivery::Sms => manager.mobile.as_deref(),
        };
        address
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
    }

    /// Whether `address` is one of the user's own (the user is never their own approver).
    pub fn belongs_to(self, address: &str, user: &User) -> bool {
        let own = match self {
            ApprovalDelivery::Email => &user.mail,
            ApprovalDelivery::Sms => &user.mobile,
        };
        let norm = |a: &str| match self {
            ApprovalDelivery::Email => a.trim().to_lowercase(),
            ApprovalDelivery::Sms => a.chars().filter(|c| c.is_ascii_digit()).collect(),
        };
        let address = norm(address);
        !address.is_empty() && own.iter().any(|o| norm(o) == address)
    }
}

/// One `[[approval_profile]]`, ready to use.
#[derive(Clone)]
pub struct ApprovalProfile {
    pub name: String,
    pub kind: ProfileKind,
    /// Base URL of approval links, without a trailing slash.
    pub server: String,
    pub message: MessageTemplate,
    /// How long an approval link is valid (the seed's "Link Expiration Time").
    pub link_expiration: Duration,
    pub delivery: ApprovalDelivery,
    /// The mail or SMS profile's transport.
    pub courier: Arc<dyn Courier>,
    /// The name of that mail or SMS profile, for the audit and the outbox.
    pub courier_name: String,
    pub email_subject: String,
    /// Used when no manager is found.
    pub default_recipient: Option<String>,
    /// The fallback directories that authenticate the profile's users, in order.
    pub directories: Vec<String>,
    /// The authentication methods that can be used under this profile (the seed's
    /// "Authentication Methods"); a login by another method is refused.
    pub methods: Vec<AuthMethod>,
    /// Information profiles: logins of the same user and application from the same address
    /// within this time of the last message about them are not reported again (zero: every login is), so a client that
    /// binds per request does not flood the manager.
    pub inform_interval: Duration,
}

impl std::fmt::Debug for ApprovalProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalProfile")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("delivery", &self.delivery)
            .field("directories", &self.directories)
            .finish_non_exhaustive()
    }
}

impl ApprovalProfile {
    pub fn governs(&self, method: AuthMethod) -> bool {
        self.methods.contains(&method)
    }

    /// The link the manager opens.
    pub fn link(&self, token: &str) -> String {
        format!("{}/approve/{token}", self.server.trim_end_matches('/'))
    }
}

/// The values a message may name.
#[derive(Debug, Clone, Default)]
pub struct MessageValues {
    pub user: String,
    pub display_name: String,
    pub application: String,
    pub client_ip: String,
    pub time: Timestamp,
    pub link: String,
    pub expires: Timestamp,
}

/// A message with `{placeholder}`s, parsed once at start so a typo is a configuration error.
/// `{{` and `}}` stand for braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Placeholder),
}

/// The placeholders a message may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    User,
    DisplayName,
    Application,
    ClientIp,
    Time,
    Link,
    Expires,
}

impl Placeholder {
    pub const ALL: [Placeholder; 7] = [
        Placeholder::User,
        Placeholder::DisplayName,
        Placeholder::Application,
        Placeholder::ClientIp,
        Placeholder::Time,
        Placeholder::Link,
        Placeholder::Expires,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::User => "user",
            Placeholder::DisplayName => "display_name",
            Placeholder::Application => "application",
            Placeholder::ClientIp => "client_ip",
            Placeholder::Time => "time",
            Placeholder::Link => "link",
            Placeholder::Expires => "expires",
        }
    }
}

/// Messages used when a profile sets none.
pub const DEFAULT_INFORMATION_MESSAGE: &str =
    "{display_name} ({user}) signed in to {application} from {client_ip} at {time}.";
pub const DEFAULT_APPROVAL_MESSAGE: &str = "{display_name} ({user}) asks to sign in to \
     {application} from {client_ip} at {time}.\nApprove or reject: {link}\n\
     The link is valid until {expires}.";

impl MessageTemplate {
    /// Parses `text`; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let placeholder = Placeholder::ALL
                        .into_iter()
                        .find(|p| p.name() == name)
                        .ok_or_else(|| {
                            format!(
                                "unknown placeholder {{{name}}}; known: {}",
                                Placeholder::ALL
                                    .map(|p| format!("{{{}}}", p.name()))
                                    .join(", ")
                            )
                        })?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Value(placeholder));
                }
                '}' => return Err("a lone `}` (write `}}` for a brace)".to_owned()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.parts.contains(&Part::Value(placeholder))
    }

    pub fn render(&self, values: &MessageValues) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(p) => out.push_str(&match p {
                    Placeholder::User => one_line(&values.user),
                    Placeholder::DisplayName => one_line(&values.display_name),
                    Placeholder::Application => one_line(&values.application),
                    Placeholder::ClientIp => one_line(&values.client_ip),
                    Placeholder::Time => values.time.to_rfc3339(),
                    Placeholder::Link => values.link.clone(),
                    Placeholder::Expires => values.expires.to_rfc3339(),
                }),
            }
        }
        out
    }
}

/// Longest value a placeholder puts into a message.
const MAX_VALUE_CHARS: usize = 128;

/// A value from a directory or a client, made safe to put into a message: one line (control,
/// line and paragraph separators and direction overrides become spaces), at most
/// [`MAX_VALUE_CHARS`]. A display name with line breaks could otherwise write a line of its own
/// into the manager's mail, such as a fake "Approve: <link>".
pub fn one_line(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            let invisible = c.is_control()
                || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}');
            if invisible { ' ' } else { c }
        })
        .collect();
    let cleaned = cleaned.trim();
    match cleaned.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &cleaned[..cut]),
        None => cleaned.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dn;

    #[test]
    fn values_cannot_write_lines_of_their_own_into_a_message() {
        let t = MessageTemplate::parse("{display_name} asks.\nApprove: {link}").unwrap();
        let text = t.render(&MessageValues {
            display_name: "Sam\nApprove: https://evil.example/x\r\n\u{2028}\u{202E}".into(),
            link: "https://mfa.example/approve/T".into(),
            ..MessageValues::default()
        });
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.starts_with("Sam Approve: https://evil.example/x"),
            "{text}"
        );
        let long = "x".repeat(500);
        let text = t.render(&MessageValues {
            display_name: long,
            ..MessageValues::default()
        });
        assert!(text.len() < 200, "{text}");
    }

    #[test]
    fn templates_render_every_placeholder_and_refuse_unknown_ones() {
        let t = MessageTemplate::parse(
            "{display_name} ({user}) → {application} from {client_ip} at {time}; {link} until {expires} {{ok}}",
        )
        .unwrap();
        let text = t.render(&MessageValues {
            user: "alice".into(),
            display_name: "Alice A".into(),
            application: "vpn".into(),
            client_ip: "192.0.2.1".into(),
            time: Timestamp(0),
            link: "https://x/approve/T".into(),
            expires: Timestamp(3_600_000),
        });
        assert_eq!(
            text,
            "Alice A (alice) → vpn from 192.0.2.1 at 1970-01-01T00:00:00Z; \
             https://x/approve/T until 1970-01-01T01:00:00Z {ok}"
        );
        assert!(t.uses(Placeholder::Link));
        let err = MessageTemplate::parse("hi {usr}").unwrap_err();
        assert!(err.contains("{usr}") && err.contains("{user}"), "{err}");
        assert!(MessageTemplate::parse("a } b").is_err());
        assert!(
            MessageTemplate::parse(DEFAULT_APPROVAL_MESSAGE)
                .unwrap()
                .uses(Placeholder::Link)
        );
        assert!(MessageTemplate::parse(DEFAULT_INFORMATION_MESSAGE).is_ok());
    }

    #[test]
    fn the_user_is_never_their_own_approver() {
        let mut user = User::new("corp", Dn::new("uid=a,dc=x"), "a");
        user.mail = vec!["A@Example.com".into()];
        user.mobile = vec!["+1 555 0100".into()];
        assert!(ApprovalDelivery::Email.belongs_to(" a@example.COM", &user));
        assert!(ApprovalDelivery::Sms.belongs_to("+15550100", &user));
        assert!(!ApprovalDelivery::Email.belongs_to("boss@example.com", &user));
        assert!(!ApprovalDelivery::Sms.belongs_to("", &user));
    }
}
