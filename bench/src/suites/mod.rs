//! The suites: what one iteration of each is, how a level of clients runs it, and the tables
//! they print (per suite; countersign beside the same work sent straight to slapd; local users
//! beside the machine's argon2 limit).

pub mod approval;
pub mod directory;
pub mod http;
pub mod ldap;
pub mod memory;
pub mod oidc;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::bail;

use crate::harness::{Harness, Samples, Window, level, ms, pct};
use crate::slapd::{dir_dn, dir_mail, dir_phone, local_dn, phone};

/// Whose password each iteration checks, which decides the column beside the latencies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A local user: countersign checks one static password with argon2id per iteration
    /// (deliver, simple bind; verify and the OTP bind check none).
    Local,
    /// A directory user: slapd checks the password.
    Directory,
}

pub struct Suite {
    pub name: &'static str,
    pub title: &'static str,
    pub parts: &'static [&'static str],
    pub kind: Kind,
}

pub const SUITES: &[Suite] = &[
    Suite {
        name: "http",
        title: "HTTP: deliver + verify round trips",
        parts: &["deliver", "verify"],
        kind: Kind::Local,
    },
    Suite {
        name: "ldap-bind-new",
        title: "LDAP: simple bind on a new connection each time",
        parts: &["connect+bind"],
        kind: Kind::Local,
    },
    Suite {
        name: "ldap-bind-persistent",
        title: "LDAP: simple binds on persistent connections",
        parts: &["bind"],
        kind: Kind::Local,
    },
    Suite {
        name: "ldap-otp",
        title: "LDAP: Deliver OTP + UNBOUNDID-DELIVERED-OTP bind round trips",
        parts: &["deliver", "sasl bind"],
        kind: Kind::Local,
    },
    Suite {
        name: "dir-bind",
        title: "Directory users: simple bind through countersign's LDAP front (persistent connections)",
        parts: &["bind"],
        kind: Kind::Directory,
    },
    Suite {
        name: "dir-bind-direct",
        title: "Directory users: the same directory work sent straight to slapd (DN read + bind on a new connection)",
        parts: &["read+bind"],
        kind: Kind::Directory,
    },
    Suite {
        name: "dir-deliver",
        title: "Directory users: Deliver OTP over HTTP (until the SMS gateway has the code)",
        parts: &["deliver"],
        kind: Kind::Directory,
    },
    Suite {
        name: "dir-deliver-direct",
        title: "Directory users: the same directory work sent straight to slapd (uid search + bind on a new connection)",
        parts: &["search+bind"],
        kind: Kind::Directory,
    },
    Suite {
        name: "dir-email-login",
        title: "Directory users: e-mail OTP login over HTTP (deliver by e-mail until the SMTP server has the mail, then verify)",
        parts: &["deliver", "verify"],
        kind: Kind::Directory,
    },
    Suite {
        name: "dir-login",
        title: "Directory users: a login through countersign's directory adapter (u: lookup, password bind, manager lookup), in process",
        parts: &["login"],
        kind: Kind::Directory,
    },
    Suite {
        name: "dir-login-direct",
        title: "Directory users: the same directory work straight to slapd (uid search, bind on a new connection, manager entry read)",
        parts: &["login"],
        kind: Kind::Directory,
    },
];

/// Each countersign suite and the suite sending the same directory work (the same password
/// checks) straight to slapd.
const PAIRS: &[(&str, &str)] = &[
    ("dir-bind", "dir-bind-direct"),
    ("dir-deliver", "dir-deliver-direct"),
    ("dir-email-login", "dir-deliver-direct"),
    ("dir-login", "dir-login-direct"),
];

pub fn find(name: &str) -> anyhow::Result<&'static Suite> {
    match SUITES.iter().find(|s| s.name == name) {
        Some(s) => Ok(s),
        None => bail!("unknown suite {name}"),
    }
}

/// One level of one suite.
async fn run(h: &Harness, name: &str, clients: usize, w: Window) -> anyhow::Result<Samples> {
    let (client, base, ldap, slapd) = (&h.client, &h.http_base, &h.ldap_addr, &h.slapd.addr);
    match name {
        "http" => {
            level(clients, w, |i, w| {
                http::login_client(
                    client.clone(),
                    base.clone(),
                    h.inbox(phone(i)),
                    format!("u:user{i}"),
                    None,
                    true,
                    w,
                )
            })
            .await
        }
        "ldap-bind-new" => {
            level(clients, w, |i, w| {
                ldap::bind_client(ldap.clone(), local_dn(i), w, false)
            })
            .await
        }
        "ldap-bind-persistent" => {
            level(clients, w, |i, w| {
                ldap::bind_client(ldap.clone(), local_dn(i), w, true)
            })
            .await
        }
        "ldap-otp" => {
            level(clients, w, |i, w| {
                ldap::otp_client(ldap.clone(), h.inbox(phone(i)), i, w)
            })
            .await
        }
        "dir-bind" => {
            level(clients, w, |i, w| {
                ldap::bind_client(ldap.clone(), dir_dn(i), w, true)
            })
            .await
        }
        "dir-bind-direct" => {
            level(clients, w, |i, w| {
                directory::direct_client(slapd.clone(), i, w, false)
            })
            .await
        }
        "dir-deliver" => {
            level(clients, w, |i, w| {
                http::login_client(
                    client.clone(),
                    base.clone(),
                    h.inbox(dir_phone(i)),
                    format!("u:duser{i}"),
                    None,
                    false,
                    w,
                )
            })
            .await
        }
        "dir-deliver-direct" => {
            level(clients, w, |i, w| {
                directory::direct_client(slapd.clone(), i, w, true)
            })
            .await
        }
        "dir-email-login" => {
            level(clients, w, |i, w| {
                http::login_client(
                    client.clone(),
                    base.clone(),
                    h.inbox(dir_mail(i)),
                    format!("u:duser{i}"),
                    Some(&["Email"]),
                    true,
                    w,
                )
            })
            .await
        }
        "dir-login" => {
            let dir = h.corp.clone();
            level(clients, w, move |i, w| {
                directory::adapter_login_client(dir.clone(), i, w)
            })
            .await
        }
        "dir-login-direct" => {
            level(clients, w, |i, w| {
                directory::direct_login_client(slapd.clone(), i, w)
            })
            .await
        }
        other => bail!("unknown suite {other}"),
    }
}

/// What the tables need besides the samples.
pub struct Report {
    pub cores: usize,
    pub argon2: Duration,
    /// Iterations per second, by suite and clients, for the comparison table.
    pub rates: HashMap<(&'static str, usize), f64>,
}

impl Report {
    /// Checks per second the machine's cores can do at most: cores ÷ one check's time.
    pub fn argon2_limit(&self) -> f64 {
        self.cores as f64 / self.argon2.as_secs_f64()
    }
}

/// Runs `suite` at each level of clients and prints its table.
pub async fn table(
    h: &Harness,
    suite: &'static Suite,
    clients: &[usize],
    measure: Duration,
    report: &mut Report,
) -> anyhow::Result<()> {
    println!("### {}\n", suite.title);
    let mut head = String::from("| clients | per second |");
    let mut rule = String::from("| ---: | ---: |");
    for p in suite.parts {
        head += &format!(" {p} p50 | {p} p99 |");
        rule += " ---: | ---: |";
    }
    if suite.kind == Kind::Local {
        head += &format!(
            " ÷ argon2 limit ({} cores ÷ {} = {:.1}/s) |",
            report.cores,
            ms(report.argon2),
            report.argon2_limit()
        );
        rule += " ---: |";
    }
    println!("{head}\n{rule}");
    for &c in clients {
        let samples = run(h, suite.name, c, crate::harness::timed(measure)).await?;
        let rate = samples.len() as f64 / measure.as_secs_f64();
        report.rates.insert((suite.name, c), rate);
        let mut row = format!("| {c} | {rate:.1} |");
        for k in 0..suite.parts.len() {
            let mut v: Vec<Duration> = samples.iter().map(|s| s[k]).collect();
            v.sort();
            row += &format!(" {} | {} |", ms(pct(&v, 0.50)), ms(pct(&v, 0.99)));
        }
        if suite.kind == Kind::Local {
            row += &format!(" {:.2}× |", rate / report.argon2_limit());
        }
        println!("{row}");
    }
    println!();
    Ok(())
}

/// countersign beside the same directory work straight to slapd, for the pairs that ran.
pub fn comparison(report: &Report, clients: &[usize]) {
    let rows: Vec<String> = PAIRS
        .iter()
        .flat_map(|&(ours, direct)| {
            clients.iter().filter_map(move |&c| {
                let a = report.rates.get(&(ours, c))?;
                let b = report.rates.get(&(direct, c))?;
                Some(format!(
                    "| {ours} | {direct} | {c} | {a:.1} | {b:.1} | {:.2}× |",
                    a / b
                ))
            })
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    println!("### Directory users: countersign ÷ the same work straight to slapd\n");
    println!(
        "| suite | straight to slapd | clients | countersign per second | slapd per second | ratio |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!("{r}");
    }
    println!();
}
