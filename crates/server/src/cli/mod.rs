//! Command-line interface: `serve`, `demo`, `check-config`, `config show`, `user ...`,
//! `audit`, `manager`, Approved OTP's `approvals`, `outbox` and `policy test`
//! ([`approvals`]), and the OpenID Connect signing `keys` ([`keys`]).

mod approvals;
mod config;
mod keys;

pub use config::{ConfigCommand, run_config};
pub use keys::{KeysCommand, run_keys};

pub use approvals::{
    ApprovalListArgs, ApprovalsCommand, OutboxCommand, PolicyCommand, run_approvals, run_outbox,
    run_policy,
};

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use countersign_core::Secret;
use countersign_core::audit::{AuditAction, AuditOutcome, AuditQuery};
use countersign_core::model::{AccountState, Sponsor, Timestamp, User};
use countersign_core::ports::{Clock, Directory, LocalUser, Store, StoreError};

use crate::app::App;
use crate::config::{Config, parse_duration};
use crate::passwords;
use crate::system::SystemClock;
use crate::terminal::visible;

#[derive(Debug, Parser)]
#[command(
    name = "countersign",
    version,
    about = "Out-of-band login steps: delivered one-time passwords and manager approval"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "COUNTERSIGN_CONFIG",
        default_value = "countersign.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the configured fronts until interrupted.
    Serve,
    /// Run a self-contained demo: its own database, demo users, codes printed here.
    Demo(DemoArgs),
    /// Validate a configuration file and print every problem found.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage users of a local directory.
    #[command(subcommand)]
    User(UserCommand),
    /// Show audit records, newest first.
    Audit(AuditArgs),
    /// Show the manager a user's approval requests would go to (LDAP `manager`, or a local
    /// user's sponsor), found through the identity mapper's directories.
    Manager {
        /// `u:NAME` or `dn:DN`.
        identity: String,
    },
    /// Approval requests: list, show, and decide them as an operator.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Messages to managers waiting to be sent, sent, or given up.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Try the approval policies on a user.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The OpenID Connect ID-token signing keys: list, rotate.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's database, key, config and outbox.
    #[arg(long, default_value = "countersign-demo")]
    pub dir: PathBuf,
    /// Address of the HTTP API (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
    /// Address of the LDAP front, StartTLS offered (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3389")]
    pub ldap: String,
    /// Address of the LDAPS front (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6636")]
    pub ldaps: String,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from the terminal, or from standard input when piped.
    Add {
        username: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// List users.
    List {
        #[arg(long)]
        directory: Option<String>,
    },
    /// Show one user.
    Show {
        username: String,
        #[arg(long)]
        directory: Option<String>,
    },
    /// Change a user's attributes (only the options given change).
    Set {
        username: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Set a new password (read from the terminal, or standard input when piped).
    SetPassword {
        username: String,
        #[arg(long)]
        directory: Option<String>,
    },
    /// Lock the account, for a time (e.g. 30m) or until unlocked.
    Lock {
        username: String,
        #[arg(long = "for")]
        duration: Option<String>,
        #[arg(long)]
        directory: Option<String>,
    },
    /// Unlock the account.
    Unlock {
        username: String,
        #[arg(long)]
        directory: Option<String>,
    },
    /// Delete the user.
    Delete {
        username: String,
        #[arg(long)]
        directory: Option<String>,
    },
}

#[derive(Debug, Args, Default)]
pub struct UserFields {
    /// Local directory (default: the first of type local).
    #[arg(long)]
    pub directory: Option<String>,
    #[arg(long)]
    pub display_name: Option<String>,
    /// E-mail address; repeat for several (replaces the list).
    #[arg(long)]
    pub mail: Vec<String>,
    /// Mobile number; repeat for several (replaces the list).
    #[arg(long)]
    pub mobile: Vec<String>,
    /// Attribute as NAME=VALUE; repeat for several values (replaces that attribute).
    #[arg(long = "attr")]
    pub attributes: Vec<String>,
    /// Remove an attribute.
    #[arg(long)]
    pub clear_attr: Vec<String>,
    #[arg(long)]
    pub sponsor_name: Option<String>,
    #[arg(long)]
    pub sponsor_email: Option<String>,
    #[arg(long)]
    pub sponsor_phone: Option<String>,
    /// Preferred delivery mechanism; repeat, in order (replaces the list).
    #[arg(long = "preferred-mechanism")]
    pub preferred_mechanisms: Vec<String>,
    /// Disable the account.
    #[arg(long, conflicts_with = "enable")]
    pub disable: bool,
    /// Enable the account.
    #[arg(long)]
    pub enable: bool,
    /// Password expiry: a duration from now (e.g. 90d), or "never".
    #[arg(long)]
    pub password_expires: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Most records to show (0 = all).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Only records whose identity or user DN contains this.
    #[arg(long)]
    pub user: Option<String>,
    /// deliver, verify, bind, login, decision, expiry or message.
    #[arg(long)]
    pub action: Option<String>,
    /// Only records of this application.
    #[arg(long)]
    pub application: Option<String>,
    /// Only records under this approval profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Only records where this policy matched.
    #[arg(long)]
    pub policy: Option<String>,
    /// Only records about this login (approval request id).
    #[arg(long)]
    pub login: Option<String>,
    /// success or failure.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Client address.
    #[arg(long)]
    pub client: Option<String>,
    /// Only records newer than this (e.g. 1h, 2d).
    #[arg(long)]
    pub since: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))
}

pub fn load_app(path: &std::path::Path) -> anyhow::Result<App> {
    App::build(load_config(path)?).map_err(|e| anyhow::anyhow!(e))
}

/// `countersign config show [SECTION]`.
/// Reads a password: from the terminal (twice, not echoed) or one line of standard input.
fn read_password() -> anyhow::Result<Secret> {
    if std::io::stdin().is_terminal() {
        let a = Secret::new(rpassword::prompt_password("Password: ")?);
        let b = Secret::new(rpassword::prompt_password("Again: ")?);
        if a != b {
            anyhow::bail!("the passwords differ");
        }
        check_password_quality(a)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        check_password_quality(Secret::new(line.trim_end_matches(['\r', '\n']).to_owned()))
    }
}

fn check_password_quality(p: Secret) -> anyhow::Result<Secret> {
    if p.expose().chars().count() < 8 {
        anyhow::bail!("the password must have at least 8 characters");
    }
    Ok(p)
}

pub(crate) fn store_err(e: StoreError) -> anyhow::Error {
    anyhow::anyhow!(e.to_string())
}

fn apply_fields(user: &mut User, f: &UserFields, now: Timestamp) -> anyhow::Result<()> {
    if let Some(v) = &f.display_name {
        user.display_name = Some(v.clone()).filter(|s| !s.is_empty());
    }
    if !f.mail.is_empty() {
        user.mail = f.mail.iter().filter(|s| !s.is_empty()).cloned().collect();
    }
    if !f.mobile.is_empty() {
        user.mobile = f.mobile.iter().filter(|s| !s.is_empty()).cloned().collect();
    }
    let mut replaced: Vec<String> = Vec::new();
    for a in &f.attributes {
        let (name, value) = a
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--attr {a:?}: expected NAME=VALUE"))?;
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            anyhow::bail!("--attr {a:?}: empty attribute name");
        }
        if ["uid", "mail", "mobile"].contains(&name.as_str()) {
            anyhow::bail!("--attr {name}: use the username, --mail or --mobile");
        }
        let values = user.attributes.entry(name.clone()).or_default();
        if !replaced.contains(&name) {
            values.clear();
            replaced.push(name);
        }
        values.push(value.to_owned());
    }
    for name in &f.clear_attr {
        user.attributes.remove(&name.to_lowercase());
    }
    if f.sponsor_name.is_some() || f.sponsor_email.is_some() || f.sponsor_phone.is_some() {
        let mut s = user.sponsor.clone().unwrap_or_default();
        let set = |field: &mut Option<String>, v: &Option<String>| {
            if let Some(v) = v {
                *field = Some(v.clone()).filter(|s| !s.is_empty());
            }
        };
        set(&mut s.name, &f.sponsor_name);
        set(&mut s.email, &f.sponsor_email);
        set(&mut s.phone, &f.sponsor_phone);
        user.sponsor = (s != Sponsor::default()).then_some(s);
    }
    if !f.preferred_mechanisms.is_empty() {
        user.preferred_mechanisms = f
            .preferred_mechanisms
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
    }
    if f.disable {
        user.account.disabled = true;
    }
    if f.enable {
        user.account.disabled = false;
    }
    if let Some(e) = &f.password_expires {
        user.account.password_expires_at = if e == "never" {
            None
        } else {
            Some(now.plus(cli_duration("--password-expires", e)?))
        };
    }
    Ok(())
}

pub(crate) fn format_time(t: Timestamp) -> String {
    use std::fmt::Write;
    let st = std::time::UNIX_EPOCH + Duration::from_millis(t.0.max(0) as u64);
    let mut out = String::new();
    // humantime cannot write years past 9999; nothing countersign sets goes there but
    // "locked until unlocked", which is shown as such by the callers.
    match write!(out, "{}", humantime::format_rfc3339_seconds(st)) {
        Ok(()) => out,
        Err(_) => "after the year 9999".to_owned(),
    }
}

/// A duration from the command line, at most 100 years.
fn cli_duration(option: &str, text: &str) -> anyhow::Result<Duration> {
    const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    match parse_duration(text) {
        Some(d) if d <= MAX => Ok(d),
        Some(_) => anyhow::bail!("{option} {text:?}: at most 100 years"),
        None => anyhow::bail!("{option} {text:?}: expected a duration such as 30m, 12h or 90d"),
    }
}

fn show_user(u: &LocalUser, now: Timestamp) -> String {
    // Every value escaped: a directory value with a line break or an escape sequence must not
    // forge a line or repaint the terminal.
    let v = |text: &str| visible(text).into_owned();
    let u = &u.user;
    let mut out = format!(
        "username: {}\ndn: {}\ndirectory: {}\n",
        v(&u.username),
        v(u.dn.as_str()),
        v(&u.directory)
    );
    if let Some(n) = &u.display_name {
        out += &format!("display name: {}\n", v(n));
    }
    out += &format!(
        "mail: {}\nmobile: {}\n",
        v(&u.mail.join(", ")),
        v(&u.mobile.join(", "))
    );
    for (k, vs) in &u.attributes {
        out += &format!("{}: {}\n", v(k), v(&vs.join(", ")));
    }
    if let Some(s) = &u.sponsor {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(s.name.clone());
        parts.extend(s.email.as_ref().map(|e| format!("<{e}>")));
        parts.extend(s.phone.clone());
        out += &format!("sponsor: {}\n", v(&parts.join(" ")));
    }
    if !u.preferred_mechanisms.is_empty() {
        out += &format!(
            "preferred mechanisms: {}\n",
            v(&u.preferred_mechanisms.join(", "))
        );
    }
    out += &format!("state: {}\n", account_state(&u.account, now));
    if let Some(t) = u.account.password_expires_at {
        out += &format!("password expires: {}\n", format_time(t));
    }
    out
}

fn account_state(a: &AccountState, now: Timestamp) -> String {
    if a.disabled {
        "disabled".into()
    } else if let Some(t) = a.locked_until.filter(|t| *t > now) {
        if t.0 == i64::MAX {
            "locked".into()
        } else {
            format!("locked until {}", format_time(t))
        }
    } else if a.password_expires_at.is_some_and(|t| t <= now) {
        "password expired".into()
    } else {
        "active".into()
    }
}

pub async fn run_user(app: &App, cmd: UserCommand) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let store: Arc<dyn Store> = app.store.clone();
    let mut out = std::io::stdout().lock();
    match cmd {
        UserCommand::Add { username, fields } => {
            add_user(app, &store, username, &fields, now, &mut out).await?;
        }
        UserCommand::List { directory } => {
            let dir = app
                .local_directory(directory.as_deref())
                .map_err(|e| anyhow::anyhow!(e))?;
            for u in store
                .list_local_users(dir.name())
                .await
                .map_err(store_err)?
            {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    u.user.username,
                    u.user.dn,
                    u.user.mail.join(","),
                    account_state(&u.user.account, now)
                )?;
            }
        }
        UserCommand::Show {
            username,
            directory,
        } => {
            let u = fetch(app, &store, directory.as_deref(), &username).await?;
            write!(out, "{}", show_user(&u, now))?;
        }
        UserCommand::Set { username, fields } => {
            let mut u = fetch(app, &store, fields.directory.as_deref(), &username).await?;
            apply_fields(&mut u.user, &fields, now)?;
            store.update_local_user(&u).await.map_err(store_err)?;
            writeln!(out, "updated {username}")?;
        }
        UserCommand::SetPassword {
            username,
            directory,
        } => {
            let mut u = fetch(app, &store, directory.as_deref(), &username).await?;
            let password = read_password()?;
            u.password_hash = passwords::hash(&password)?;
            store.update_local_user(&u).await.map_err(store_err)?;
            writeln!(out, "password of {username} changed")?;
        }
        UserCommand::Lock {
            username,
            duration,
            directory,
        } => {
            let mut u = fetch(app, &store, directory.as_deref(), &username).await?;
            u.user.account.locked_until = Some(match &duration {
                Some(d) => now.plus(cli_duration("--for", d)?),
                None => Timestamp(i64::MAX),
            });
            store.update_local_user(&u).await.map_err(store_err)?;
            writeln!(out, "{username}: {}", account_state(&u.user.account, now))?;
        }
        UserCommand::Unlock {
            username,
            directory,
        } => {
            let mut u = fetch(app, &store, directory.as_deref(), &username).await?;
            u.user.account.locked_until = None;
            store.update_local_user(&u).await.map_err(store_err)?;
            writeln!(out, "{username}: {}", account_state(&u.user.account, now))?;
        }
        UserCommand::Delete {
            username,
            directory,
        } => {
            let dir = app
                .local_directory(directory.as_deref())
                .map_err(|e| anyhow::anyhow!(e))?;
            if !store
                .delete_local_user(dir.name(), &username)
                .await
                .map_err(store_err)?
            {
                anyhow::bail!("no user named {username:?}");
            }
            writeln!(out, "deleted {username}")?;
        }
    }
    Ok(())
}

/// `countersign user add`: a new local user, with the password read from the terminal.
async fn add_user(
    app: &App,
    store: &Arc<dyn Store>,
    username: String,
    fields: &UserFields,
    now: Timestamp,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let dir = app
        .local_directory(fields.directory.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    if username.trim().is_empty() || username.chars().any(char::is_control) {
        anyhow::bail!("invalid username {username:?}");
    }
    let mut user = User::new(dir.config().name.clone(), dir.dn_for(&username), &username);
    apply_fields(&mut user, fields, now)?;
    if store
        .local_user(&user.directory, &username)
        .await
        .map_err(store_err)?
        .is_some()
    {
        anyhow::bail!("a user named {username:?} exists already");
    }
    let password = read_password()?;
    let password_hash = passwords::hash(&password)?;
    let dn = user.dn.clone();
    store
        .insert_local_user(&LocalUser {
            user,
            password_hash,
        })
        .await
        .map_err(store_err)?;
    writeln!(out, "added {username} ({dn})")?;
    Ok(())
}

async fn fetch(
    app: &App,
    store: &Arc<dyn Store>,
    directory: Option<&str>,
    username: &str,
) -> anyhow::Result<LocalUser> {
    let dir = app
        .local_directory(directory)
        .map_err(|e| anyhow::anyhow!(e))?;
    store
        .local_user(dir.name(), username)
        .await
        .map_err(store_err)?
        .ok_or_else(|| anyhow::anyhow!("no user named {username:?} in directory {}", dir.name()))
}

/// `countersign manager IDENTITY`: exit 0 with the manager, 1 when there is none.
pub async fn run_manager(app: &App, identity: &str) -> anyhow::Result<bool> {
    let manager = app
        .otp
        .mapper()
        .manager_of(identity)
        .await
        .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    match manager {
        Some(m) => {
            if let Some(dn) = &m.dn {
                writeln!(out, "dn: {dn}")?;
            }
            writeln!(out, "name: {}", m.name.as_deref().unwrap_or("-"))?;
            writeln!(out, "mail: {}", m.mail.as_deref().unwrap_or("-"))?;
            writeln!(out, "mobile: {}", m.mobile.as_deref().unwrap_or("-"))?;
            Ok(true)
        }
        None => {
            writeln!(
                out,
                "no manager: an approval profile's default recipient would be used"
            )?;
            Ok(false)
        }
    }
}

/// ` [application vpn, policy p, profile critical, login ID]` when any is known.
fn login_facts(f: &countersign_core::audit::LoginFacts) -> String {
    let parts: Vec<String> = [
        ("application", &f.application),
        ("policy", &f.policy),
        ("profile", &f.profile),
        ("login", &f.login),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k} {}", visible(v))))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" [{}]", parts.join(", "))
    }
}

pub async fn run_audit(app: &App, args: AuditArgs) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let query = AuditQuery {
        action: args
            .action
            .as_deref()
            .map(|a| {
                AuditAction::parse(a)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--action {a:?}: expected deliver, verify, bind, login, decision, expiry or message"
                        )
                    })
            })
            .transpose()?,
        outcome: args
            .outcome
            .as_deref()
            .map(|o| {
                AuditOutcome::parse(o)
                    .ok_or_else(|| anyhow::anyhow!("--outcome {o:?}: expected success or failure"))
            })
            .transpose()?,
        user: args.user,
        client: args.client,
        since: args
            .since
            .as_deref()
            .map(|s| cli_duration("--since", s).map(|d| now.minus(d)))
            .transpose()?,
        application: args.application,
        profile: args.profile,
        policy: args.policy,
        login: args.login,
        limit: args.limit,
    };
    let records = app.store.list_audit(&query).await.map_err(store_err)?;
    let mut out = std::io::stdout().lock();
    for r in records {
        if args.json {
            let v = serde_json::json!({
                "at": format_time(r.at), "action": r.action.as_str(), "front": r.front,
                "identity": r.identity, "user_dn": r.user_dn, "client": r.client,
                "outcome": r.outcome.as_str(), "reason": r.reason,
                "mechanism": r.mechanism, "recipient": r.recipient,
                "application": r.login.application, "policy": r.login.policy,
                "profile": r.login.profile, "login": r.login.login,
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{}  {:<8} {:<7} {:<4} {:<15} {}  {}{}{}",
                format_time(r.at),
                r.action.as_str(),
                r.outcome.as_str(),
                visible(&r.front),
                visible(r.client.as_deref().unwrap_or("-")),
                visible(&r.identity),
                visible(&r.reason),
                match (&r.mechanism, &r.recipient) {
                    (Some(m), Some(to)) => format!(" via {} to {}", visible(m), visible(to)),
                    (None, Some(to)) => format!(" to {}", visible(to)),
                    _ => String::new(),
                },
                login_facts(&r.login),
            )?;
        }
    }
    Ok(())
}
