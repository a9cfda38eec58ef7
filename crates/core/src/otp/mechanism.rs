//! Delivery mechanisms, the order in which they are tried (Ping spec §7.1 step 7) and how the
//! message around the OTP is composed.

use std::fmt;
use std::sync::Arc;

use crate::model::User;
use crate::ports::Courier;

/// What kind of address a mechanism sends to, and so which texts it uses: e-mail uses the
/// subject and the full texts, SMS the compact texts (spec §7.1, "Message text").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    /// The user's addresses for this channel, primary first.
    pub fn addresses(self, user: &User) -> &[String] {
        match self {
            Channel::Email => &user.mail,
            Channel::Sms => &user.mobile,
        }
    }

    /// The address with most of it hidden, for showing to callers who have not proved who they
    /// are: `a***@example.com`, `+*******0001`.
    pub fn mask(self, address: &str) -> String {
        match self {
            Channel::Email => match address.rsplit_once('@') {
                Some((local, domain)) => {
                    let first: String = local.chars().take(1).collect();
                    format!("{first}***@{domain}")
                }
                None => "***".to_owned(),
            },
            Channel::Sms => {
                let digits = address.chars().filter(char::is_ascii_digit).count();
                let mut seen = 0;
                address
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == '+')
                    .map(|c| {
                        if c == '+' {
                            return c;
                        }
                        seen += 1;
                        if seen + 4 > digits { c } else { '*' }
                    })
                    .collect()
            }
        }
    }

    /// Whether a client-supplied recipient ID names this address: the address itself (e-mail
    /// compared case-insensitively; phone numbers ignoring spaces, dashes, dots and parentheses)
    /// or its [`Channel::mask`], as handed out to callers who may not see addresses.
    pub fn same_address(self, a: &str, b: &str) -> bool {
        if self.mask(a) == b.trim() {
            return true;
        }
        match self {
            Channel::Email => a.trim().eq_ignore_ascii_case(b.trim()),
            Channel::Sms => {
                let norm = |s: &str| -> String {
                    s.chars()
                        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                        .collect()
                };
                norm(a) == norm(b)
            }
        }
    }
}

/// A configured `[[delivery_mechanism]]`: its name is what clients and the preferred-mechanism
/// attribute use.
#[derive(Clone)]
pub struct DeliveryMechanism {
    pub name: String,
    pub channel: Channel,
    pub enabled: bool,
    pub subject: Option<String>,
    pub text_before_otp: Option<String>,
    pub text_after_otp: Option<String>,
    pub courier: Arc<dyn Courier>,
}

impl fmt::Debug for DeliveryMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryMechanism")
            .field("name", &self.name)
            .field("channel", &self.channel)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_SUBJECT: &str = "Your one-time password";
pub const DEFAULT_TEXT_BEFORE: &str = "Your one-time password is: ";

/// Texts a Deliver OTP request may carry (spec §3.1 elements [4] to [8]). Present ones win over
/// the mechanism's configured texts, field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageTexts {
    pub subject: Option<String>,
    pub full_before: Option<String>,
    pub full_after: Option<String>,
    pub compact_before: Option<String>,
    pub compact_after: Option<String>,
}

impl DeliveryMechanism {
    /// Subject and the text to put before and after the OTP for this mechanism.
    pub fn compose(&self, request: &MessageTexts) -> (String, String, String) {
        let (before, after) = match self.channel {
            Channel::Email => (&request.full_before, &request.full_after),
            Channel::Sms => (&request.compact_before, &request.compact_after),
        };
        let pick = |req: &Option<String>, conf: &Option<String>, default: &str| {
            req.clone()
                .or_else(|| conf.clone())
                .unwrap_or_else(|| default.to_owned())
        };
        (
            pick(&request.subject, &self.subject, DEFAULT_SUBJECT),
            pick(before, &self.text_before_otp, DEFAULT_TEXT_BEFORE),
            pick(after, &self.text_after_otp, ""),
        )
    }
}

/// One mechanism to try, with the recipient the client asked for (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MechanismChoice {
    pub name: String,
    pub recipient: Option<String>,
}

impl MechanismChoice {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            recipient: None,
        }
    }
}

/// The order of attempts (spec §7.1 step 7): the request's list alone, in order, when it has
/// one; otherwise the user's preferred mechanisms, then the defaults, skipping any name already
/// tried. Names compare case-insensitively, as configuration object names do.
pub fn plan(
    requested: Option<&[MechanismChoice]>,
    preferred: &[String],
    defaults: &[String],
) -> Vec<MechanismChoice> {
    let mut out: Vec<MechanismChoice> = Vec::new();
    // An empty list is the same as none: clients that send `[]` mean "no preference".
    if let Some(list) = requested.filter(|l| !l.is_empty()) {
        for choice in list {
            let repeat = out.iter().any(|c| {
                c.name.eq_ignore_ascii_case(&choice.name) && c.recipient == choice.recipient
            });
            if !repeat {
                out.push(choice.clone());
            }
        }
        return out;
    }
    for name in preferred.iter().chain(defaults) {
        if !out.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
            out.push(MechanismChoice::named(name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(plan: &[MechanismChoice]) -> Vec<&str> {
        plan.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn request_list_is_used_alone_and_in_order() {
        let req = [
            MechanismChoice::named("SMS"),
            MechanismChoice::named("Email"),
        ];
        let p = plan(
            Some(&req),
            &["Voice".into()],
            &["Email".into(), "File".into()],
        );
        assert_eq!(names(&p), ["SMS", "Email"]);
    }

    #[test]
    fn preferred_then_defaults_skipping_already_tried() {
        let p = plan(
            None,
            &["SMS".into(), "email".into()],
            &["Email".into(), "File".into()],
        );
        assert_eq!(names(&p), ["SMS", "email", "File"]);
        let p = plan(None, &[], &["Email".into(), "SMS".into()]);
        assert_eq!(names(&p), ["Email", "SMS"]);
    }

    #[test]
    fn empty_request_list_is_no_list() {
        let p = plan(Some(&[]), &["SMS".into()], &["Email".into()]);
        assert_eq!(names(&p), ["SMS", "Email"]);
    }

    #[test]
    fn masks_hide_most_of_the_address_and_still_select_it() {
        assert_eq!(Channel::Email.mask("alice@example.com"), "a***@example.com");
        assert_eq!(Channel::Sms.mask("+1 555 010-0001"), "+*******0001");
        assert!(Channel::Email.same_address("alice@example.com", "a***@example.com"));
        assert!(!Channel::Email.same_address("bob@example.com", "a***@example.com"));
        assert!(Channel::Sms.same_address("+15550100001", "+*******0001"));
    }

    #[test]
    fn phone_numbers_and_mail_compare_loosely() {
        assert!(Channel::Sms.same_address("+1 (555) 010-0001", "+15550100001"));
        assert!(!Channel::Sms.same_address("+15550100001", "+15550100002"));
        assert!(Channel::Email.same_address("Alice@Example.com", "alice@example.com"));
    }
}
