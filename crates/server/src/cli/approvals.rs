//! `countersign approvals …`, `outbox …` and `policy test`: the operator's side of Approved
//! OTP. They work on the store, so an operator can decide a request while mail is down; a
//! running server wakes the login waiting on it within a second (it reads recent decisions).

use std::io::Write;

use clap::{Args, Subcommand};
use countersign_core::application::Application;
use countersign_core::approval::{ApprovalRequest, ApprovalState, DecidedBy};
use countersign_core::identity::Identity;
use countersign_core::login::{DecisionResult, LoginService};
use countersign_core::outbox::{OutboxMessage, OutboxState};
use countersign_core::ports::{ApprovalQuery, Clock};

use super::{format_time, store_err};
use crate::app::App;
use crate::system::SystemClock;
use crate::terminal::visible;

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approval requests, newest first.
    List(ApprovalListArgs),
    /// Show one request.
    Show { id: String },
    /// Approve a pending request (as the manager would through the link).
    Approve { id: String },
    /// Reject a pending request.
    Reject { id: String },
    /// Cancel a pending request.
    Cancel { id: String },
}

#[derive(Debug, Args)]
pub struct ApprovalListArgs {
    /// pending, approved, rejected, expired or cancelled.
    #[arg(long)]
    pub state: Option<String>,
    /// Only requests whose username or user DN contains this.
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub application: Option<String>,
    /// Most requests to show (0 = all).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List outbox messages, newest first.
    List {
        /// queued, sent or failed.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Queue failed messages again: one by id, or all with --all-failed.
    Retry {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all_failed: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Which policy and profile apply to a user, and who would be asked; sends nothing.
    Test {
        /// `u:NAME` or `dn:DN`.
        identity: String,
        /// The application logging in (default: one to which Approved OTP applies).
        #[arg(long)]
        application: Option<String>,
    },
}

fn operator() -> DecidedBy {
    let name = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    DecidedBy {
        channel: "cli".to_owned(),
        operator: Some(name),
        ..DecidedBy::default()
    }
}

fn approval_json(
    r: &ApprovalRequest,
    now: countersign_core::model::Timestamp,
) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "state": r.state_at(now).as_str(), "username": r.username,
        "user_dn": r.user_dn, "display_name": r.display_name, "application": r.application,
        "profile": r.profile, "front": r.front, "client": r.client, "recipient": r.recipient,
        "approver": r.approver, "created_at": format_time(r.created_at),
        "expires_at": format_time(r.expires_at),
        "decided_at": r.decided_at.map(format_time),
        "decided_by": r.decided_by.as_ref().map(DecidedBy::describe),
    })
}

pub async fn run_approvals(app: &App, cmd: ApprovalsCommand) -> anyhow::Result<()> {
    let login = &app.login;
    let now = SystemClock.now();
    let mut out = std::io::stdout().lock();
    let (id, state) = match cmd {
        ApprovalsCommand::List(args) => return list_approvals(app, args, &mut out).await,
        ApprovalsCommand::Show { id } => {
            let r = app
                .store
                .approval(&id)
                .await
                .map_err(store_err)?
                .ok_or_else(|| anyhow::anyhow!("no approval request {id:?}"))?;
            for (k, v) in approval_json(&r, now).as_object().into_iter().flatten() {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                writeln!(out, "{k}: {}", visible(&text))?;
            }
            return Ok(());
        }
        ApprovalsCommand::Approve { id } => (id, ApprovalState::Approved),
        ApprovalsCommand::Reject { id } => (id, ApprovalState::Rejected),
        ApprovalsCommand::Cancel { id } => (id, ApprovalState::Cancelled),
    };
    match login
        .decide(&id, state, operator())
        .await
        .map_err(|e| anyhow::anyhow!("{id}: {e}"))?
    {
        DecisionResult::Decided(r) => {
            writeln!(
                out,
                "{}: {} ({})",
                r.id,
                r.state.as_str(),
                visible(&r.username)
            )?;
            Ok(())
        }
        DecisionResult::AlreadyFinal(r) => anyhow::bail!(
            "{}: already {} at {}",
            r.id,
            r.state.as_str(),
            r.decided_at.map(format_time).unwrap_or_default()
        ),
    }
}

async fn list_approvals(
    app: &App,
    args: ApprovalListArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let state = args
        .state
        .as_deref()
        .map(|s| {
            ApprovalState::parse(s).ok_or_else(|| {
                anyhow::anyhow!(
                    "--state {s:?}: expected pending, approved, rejected, expired or cancelled"
                )
            })
        })
        .transpose()?;
    let query = ApprovalQuery {
        state,
        user: args.user,
        application: args.application,
        decided_since: None,
        limit: args.limit,
    };
    let now = SystemClock.now();
    for r in app.store.list_approvals(&query).await.map_err(store_err)? {
        if args.json {
            writeln!(out, "{}", approval_json(&r, now))?;
        } else {
            writeln!(
                out,
                "{}  {:<9} {}  {:<12} {:<12} {} → {}  until {}",
                r.id,
                r.state_at(now).as_str(),
                format_time(r.created_at),
                visible(&r.application),
                visible(&r.profile),
                visible(&r.username),
                visible(&r.recipient),
                format_time(r.expires_at),
            )?;
        }
    }
    Ok(())
}

fn message_json(m: &OutboxMessage) -> serde_json::Value {
    serde_json::json!({
        "id": m.id, "state": m.state.as_str(), "profile": m.profile, "recipient": m.recipient,
        "subject": m.subject, "about_user": m.about_user, "application": m.application,
        "created_at": format_time(m.created_at), "attempts": m.attempts,
        "next_attempt_at": format_time(m.next_attempt_at), "last_error": m.last_error,
        "sent_at": m.sent_at.map(format_time),
    })
}

pub async fn run_outbox(app: &App, cmd: OutboxCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        OutboxCommand::List { state, limit, json } => {
            let state = state
                .as_deref()
                .map(|s| {
                    OutboxState::parse(s).ok_or_else(|| {
                        anyhow::anyhow!("--state {s:?}: expected queued, sent or failed")
                    })
                })
                .transpose()?;
            for m in app
                .store
                .list_messages(state, limit)
                .await
                .map_err(store_err)?
            {
                if json {
                    writeln!(out, "{}", message_json(&m))?;
                } else {
                    writeln!(
                        out,
                        "{}  {:<6} {}  tries {:<3} {} → {}{}",
                        m.id,
                        m.state.as_str(),
                        format_time(m.created_at),
                        m.attempts,
                        visible(&m.profile),
                        visible(&m.recipient),
                        m.last_error
                            .as_deref()
                            .map(|e| format!("  last error: {}", visible(e)))
                            .unwrap_or_default(),
                    )?;
                }
            }
            Ok(())
        }
        OutboxCommand::Retry { id, all_failed } => {
            if id.is_none() && !all_failed {
                anyhow::bail!("give a message id, or --all-failed");
            }
            let n = app
                .store
                .retry_messages(id.as_deref(), SystemClock.now())
                .await
                .map_err(store_err)?;
            if n == 0 && id.is_some() {
                anyhow::bail!("no failed message with that id");
            }
            writeln!(out, "{n} message(s) queued again")?;
            Ok(())
        }
    }
}

/// `policy test`: exit status true when the user may log in under the policies.
pub async fn run_policy(app: &App, cmd: PolicyCommand) -> anyhow::Result<bool> {
    let PolicyCommand::Test {
        identity,
        application,
    } = cmd;
    let login: &LoginService = &app.login;
    let app_profile = match &application {
        Some(name) => app
            .applications
            .by_name(name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no [[application]] named {name:?}"))?,
        None => Application::new(
            "(any)",
            None,
            countersign_core::application::AuthMethod::ALL.to_vec(),
            true,
        ),
    };
    let parsed = Identity::parse(&identity).map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let user = login
        .passwords
        .mapper
        .find_user(&parsed)
        .await
        .map_err(|e| anyhow::anyhow!(e.to_string()))?
        .ok_or_else(|| anyhow::anyhow!("no user {identity:?} in the login directories"))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "user: {} ({})",
        visible(user.dn.as_str()),
        visible(&user.directory)
    )?;
    writeln!(out, "application: {}", visible(&app_profile.name))?;
    if login.rules.profiles.is_empty() {
        writeln!(
            out,
            "no approval profiles are configured: the password alone decides"
        )?;
        return Ok(true);
    }
    if !app_profile.approved_otp {
        writeln!(out, "Approved OTP does not apply to this application")?;
        return Ok(true);
    }
    let (policy, profile) = match login.rules.choose(&user) {
        Ok(chosen) => chosen,
        Err(denial) => {
            writeln!(out, "denied: {} ({})", denial.as_str(), denial.code())?;
            return Ok(false);
        }
    };
    writeln!(
        out,
        "policy: {}",
        policy.unwrap_or("(none configured: default profile)")
    )?;
    writeln!(
        out,
        "profile: {} ({}, governs {})",
        profile.name,
        profile.kind.as_str(),
        profile
            .methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    let lookup = login
        .approver(profile, &user)
        .await
        .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    for note in &lookup.notes {
        writeln!(out, "note: {}", visible(note))?;
    }
    match lookup.approver {
        Some(a) => {
            writeln!(
                out,
                "would ask: {} <{}> by {}",
                visible(&a.who),
                visible(&a.address),
                profile.delivery.as_str()
            )?;
            Ok(true)
        }
        None if profile.kind == countersign_core::approval::ProfileKind::Approval => {
            writeln!(
                out,
                "nobody can be asked: the login would be denied (approver_unreachable)"
            )?;
            Ok(false)
        }
        None => {
            writeln!(
                out,
                "nobody can be informed: the login goes through, the audit says so"
            )?;
            Ok(true)
        }
    }
}
