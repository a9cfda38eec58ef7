//! What the hosted sign-in pages show, without any handling: one struct per page with the
//! values the handler knows, and `render(lang)` turning it into HTML in that language through
//! askama (checked at compile time, every value HTML-escaped). The pages' ids and attributes
//! are those of the shared page contract (issue 9): sign-in, picking where an OTP goes,
//! entering it, waiting for the manager (live through `/assets/waiting.js`, a refresh without
//! script) and the outcome. Strings come from [`super::i18n`]; no page has inline script or
//! style, so the pages' CSP can forbid both.

use askama::Template;
use countersign_core::Timestamp;

use super::i18n::{Catalogue, Lang, Piece, fill, pieces};

/// A time as the pages show it (UTC, to the second), and as `<time datetime>` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub iso: String,
    pub shown: String,
}

impl Shown {
    pub fn of(t: Timestamp) -> Self {
        let iso = t.to_rfc3339();
        let shown = format!("{} UTC", iso.trim_end_matches('Z').replacen('T', " ", 1));
        Self { iso, shown }
    }
}

/// Seconds left as the countdown shows them: `mm:ss`, `h:mm:ss` from an hour on.
pub fn countdown_text(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// Why a form is shown again; each page words it in its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormError {
    /// Wrong username/password or wrong code: one message, whatever the real reason.
    Refused,
    TooManyAttempts,
    /// The directory or the store cannot answer.
    Unavailable,
    /// The OTP could not be delivered.
    NotSent,
}

impl FormError {
    fn text(self, t: &Catalogue, refused: &'static str) -> &'static str {
        match self {
            FormError::Refused => refused,
            FormError::TooManyAttempts => t.signin_too_many,
            FormError::Unavailable => t.signin_unavailable,
            FormError::NotSent => t.otp_not_sent,
        }
    }
}

/// What the language switch lists. Every template of these pages also has the language (for
/// `<html lang>` and the switch) and its catalogue (`t`).
const LANGS: [Lang; 2] = Lang::ALL;

/// The sign-in form, first step of every flow.
#[derive(Clone, Debug)]
pub struct SignIn<'a> {
    /// The flow's id (hex), for the form's action.
    pub flow: &'a str,
    pub csrf: &'a str,
    /// The application's name, as the user knows it.
    pub application: &'a str,
    /// What was typed before a refusal; empty the first time.
    pub username: &'a str,
    pub error: Option<FormError>,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    view: &'a SignIn<'a>,
    lead: Vec<Piece>,
    error: Option<&'static str>,
}

impl SignIn<'_> {
    pub fn render(&self, lang: Lang) -> Result<String, askama::Error> {
        let t = lang.catalogue();
        SignInPage {
            lang,
            langs: LANGS,
            t,
            view: self,
            lead: pieces(t.signin_lead, &[("application", self.application)]),
            error: self.error.map(|e| e.text(t, t.signin_refused)),
        }
        .render()
    }
}

/// One way of delivering the OTP the user can pick.
#[derive(Clone, Debug)]
pub struct MechanismChoice {
    /// The form's value for it (and its id, `mechanism-{index}`).
    pub index: usize,
    /// The mechanism's name (`Email`, `SMS`, ...).
    pub name: String,
    /// The address, masked as Get Supported shows it.
    pub address: String,
}

/// Where should the OTP go: a radio per mechanism, the first checked.
#[derive(Clone, Debug)]
pub struct OtpPick<'a> {
    pub flow: &'a str,
    pub csrf: &'a str,
    pub application: &'a str,
    pub mechanisms: Vec<MechanismChoice>,
    pub error: Option<FormError>,
}

#[derive(Template)]
#[template(path = "otp_pick.html")]
struct OtpPickPage<'a> {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    view: &'a OtpPick<'a>,
    lead: Vec<Piece>,
    error: Option<&'static str>,
}

impl OtpPick<'_> {
    pub fn render(&self, lang: Lang) -> Result<String, askama::Error> {
        let t = lang.catalogue();
        OtpPickPage {
            lang,
            langs: LANGS,
            t,
            view: self,
            lead: pieces(t.otp_pick_lead, &[("application", self.application)]),
            error: self.error.map(|e| e.text(t, t.otp_not_sent)),
        }
        .render()
    }
}

/// Enter the code that was sent.
#[derive(Clone, Debug)]
pub struct OtpCode<'a> {
    pub flow: &'a str,
    pub csrf: &'a str,
    /// The mechanism's name the code went by.
    pub mechanism: &'a str,
    /// The masked address it went to.
    pub address: &'a str,
    /// The "send another code" link: the mechanism step.
    pub resend: &'a str,
    pub error: Option<FormError>,
}

#[derive(Template)]
#[template(path = "otp_code.html")]
struct OtpCodePage<'a> {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    view: &'a OtpCode<'a>,
    lead: Vec<Piece>,
    error: Option<&'static str>,
}

impl OtpCode<'_> {
    pub fn render(&self, lang: Lang) -> Result<String, askama::Error> {
        let t = lang.catalogue();
        OtpCodePage {
            lang,
            langs: LANGS,
            t,
            view: self,
            lead: pieces(
                t.otp_code_lead,
                &[("mechanism", self.mechanism), ("address", self.address)],
            ),
            error: self.error.map(|e| e.text(t, t.otp_code_refused)),
        }
        .render()
    }
}

/// Waiting for the manager: live through `/assets/waiting.js` and the flow's event stream,
/// reloaded every 5 s without script.
#[derive(Clone, Debug)]
pub struct Waiting<'a> {
    pub flow: &'a str,
    pub csrf: &'a str,
    /// Who was asked, masked.
    pub approver: &'a str,
    pub expires_at: Timestamp,
    /// Now, for the countdown's first value (the script counts on from it, so a client clock
    /// that is off does not matter).
    pub now: Timestamp,
}

#[derive(Template)]
#[template(path = "waiting.html")]
struct WaitingPage<'a> {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    view: &'a Waiting<'a>,
    expires: Shown,
    remaining: u64,
    countdown: String,
}

impl Waiting<'_> {
    pub fn render(&self, lang: Lang) -> Result<String, askama::Error> {
        let remaining_ms = self.expires_at.0.saturating_sub(self.now.0).max(0);
        // Rounded up: "00:00" only once the time is really up.
        let remaining = u64::try_from(remaining_ms.saturating_add(999) / 1000).unwrap_or(0);
        WaitingPage {
            lang,
            langs: LANGS,
            t: lang.catalogue(),
            view: self,
            expires: Shown::of(self.expires_at),
            remaining,
            countdown: countdown_text(remaining),
        }
        .render()
    }
}

/// How a sign-in ended (the outcome page's `data-outcome` and card class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    Approved,
    Rejected,
    Expired,
    Cancelled,
    Error,
    /// The flow was already finished (a second tab, the back button).
    Used,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Approved => "approved",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::Expired => "expired",
            OutcomeKind::Cancelled => "cancelled",
            OutcomeKind::Error => "error",
            OutcomeKind::Used => "used",
        }
    }
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end of a sign-in that does not go straight back to the application.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub title: String,
    pub lines: Vec<String>,
    /// Back to the application (`/flow/{flow}/back`).
    pub back: String,
}

#[derive(Template)]
#[template(path = "outcome.html")]
struct OutcomePage<'a> {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    view: &'a Outcome,
}

impl Outcome {
    /// The catalogue's title and lines for `kind`, back through `/flow/{flow}/back`.
    pub fn standard(kind: OutcomeKind, flow: &str, application: &str, lang: Lang) -> Outcome {
        let t = lang.catalogue();
        let lines: &[&str] = match kind {
            OutcomeKind::Approved => &[t.outcome_approved_line],
            OutcomeKind::Rejected => &[t.outcome_rejected_line, t.outcome_rejected_advice],
            OutcomeKind::Expired => &[t.outcome_expired_line],
            OutcomeKind::Cancelled => &[t.outcome_cancelled_line],
            OutcomeKind::Error => &[t.outcome_error_line],
            OutcomeKind::Used => &[t.outcome_used_line],
        };
        let title = match kind {
            OutcomeKind::Approved => t.outcome_approved_title,
            OutcomeKind::Rejected => t.outcome_rejected_title,
            OutcomeKind::Expired => t.outcome_expired_title,
            OutcomeKind::Cancelled => t.outcome_cancelled_title,
            OutcomeKind::Error => t.outcome_error_title,
            OutcomeKind::Used => t.outcome_used_title,
        };
        Outcome {
            kind,
            title: title.to_owned(),
            lines: lines
                .iter()
                .map(|l| fill(l, &[("application", application)]))
                .collect(),
            back: format!("/flow/{flow}/back"),
        }
    }

    pub fn render(&self, lang: Lang) -> Result<String, askama::Error> {
        OutcomePage {
            lang,
            langs: LANGS,
            t: lang.catalogue(),
            view: self,
        }
        .render()
    }
}

#[cfg(test)]
mod tests;
