//! `[[directory]]`: where users are found. One ordered list; each entry's kind (`local` or
//! `ldap`) carries that kind's settings.

use std::path::PathBuf;
use std::time::Duration;

use countersign_core::Secret;
use serde::Deserialize;

use super::validator::{At, SecretSource, Span, Validator};

/// `[[directory]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DirectorySection {
    name: String,
    /// `local` (users in countersign's store) or `ldap` (a directory server).
    #[serde(rename = "type")]
    kind: String,
    /// local: base of the DNs of local users, `uid=<username>,<base_dn>`.
    base_dn: Option<String>,
    /// Attributes an `u:` identity is matched against (any of them); exactly one user must match.
    match_attributes: Option<Vec<String>>,
    /// ldap: `ldap://host:port` or `ldaps://host:port`.
    url: Option<String>,
    /// ldap: upgrade `ldap://` with StartTLS (required, not opportunistic).
    starttls: Option<bool>,
    /// ldap: PEM CA certificates to trust (default: the system's).
    ca_file: Option<PathBuf>,
    /// ldap: service account for lookups (anonymous when absent).
    bind_dn: Option<String>,
    bind_password_file: Option<PathBuf>,
    bind_password_env: Option<String>,
    /// ldap: where users are searched (subtree); DNs outside them are nobody.
    user_base_dns: Option<Vec<String>>,
    /// ldap: extra filter every user must match, e.g. `(objectClass=inetOrgPerson)`.
    match_filter: Option<String>,
    mail_attribute: Option<String>,
    mobile_attribute: Option<String>,
    display_name_attribute: Option<String>,
    manager_attribute: Option<String>,
    preferred_mechanism_attribute: Option<String>,
    /// ldap: the entry's immutable identifier (the OpenID Connect `sub` is made from it);
    /// default: `entryUUID` (RFC 4530; OpenLDAP, 389 DS), else `objectGUID` (Active Directory).
    id_attribute: Option<String>,
    /// ldap: more attributes to read for policies, e.g. `["memberOf"]`.
    attributes: Option<Vec<String>>,
    /// ldap: per-operation timeout (default 10s).
    timeout: Option<String>,
    /// ldap: when the server cannot be reached, `stop` the fallback chain (default) or try the
    /// `next` directory.
    on_unavailable: Option<String>,
    /// ldap: whose account attributes say a user may not log in: `auto` (default: all that are
    /// present), `openldap` (ppolicy), `active_directory`, `389ds`.
    account_policy: Option<String>,
    /// ldap, OpenLDAP ppolicy: the policy entry for users without `pwdPolicySubentry` (the
    /// overlay's `ppolicy_default`).
    password_policy_dn: Option<String>,
}

/// A `[[directory]]`, in the order of the file.
#[derive(Debug, Clone)]
pub enum DirectoryConfig {
    /// `type = "local"`: users in countersign's store.
    Local(LocalDirectoryConfig),
    /// `type = "ldap"`: a directory server (boxed: it is far larger than a local one).
    Ldap(Box<LdapDirectoryConfig>),
}

impl DirectoryConfig {
    pub fn name(&self) -> &str {
        match self {
            DirectoryConfig::Local(d) => &d.name,
            DirectoryConfig::Ldap(d) => &d.name,
        }
    }

    /// The DNs under which this directory's users are.
    pub fn naming_contexts(&self) -> Vec<String> {
        match self {
            DirectoryConfig::Local(d) => vec![d.base_dn.clone()],
            DirectoryConfig::Ldap(d) => d.user_base_dns.clone(),
        }
    }
}

/// A `[[directory]]` of type `local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDirectoryConfig {
    pub name: String,
    pub base_dn: String,
    pub match_attributes: Vec<String>,
}

/// A `[[directory]]` of type `ldap`.
#[derive(Debug, Clone)]
pub struct LdapDirectoryConfig {
    pub name: String,
    pub url: String,
    pub starttls: bool,
    pub ca_pem: Option<Vec<u8>>,
    /// The file `ca_pem` was read from (for `config show`).
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    /// Where `bind_password` was read from (for `config show`).
    pub bind_password_from: Option<SecretSource>,
    pub user_base_dns: Vec<String>,
    pub match_attributes: Vec<String>,
    pub match_filter: Option<String>,
    pub mail_attribute: String,
    pub mobile_attribute: String,
    pub display_name_attribute: String,
    pub manager_attribute: String,
    pub preferred_mechanism_attribute: String,
    /// `None`: `entryUUID`, else `objectGUID`, whichever the entry has.
    pub id_attribute: Option<String>,
    pub attributes: Vec<String>,
    pub timeout: Duration,
    pub stop_when_unavailable: bool,
    pub account_policy: AccountPolicy,
    pub password_policy_dn: Option<String>,
}

/// Whose account attributes an ldap directory reads (docs/directories.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountPolicy {
    /// Every kind below, whichever attributes an entry has.
    Auto,
    /// OpenLDAP's ppolicy overlay (draft-behera-ldap-password-policy).
    OpenLdap,
    ActiveDirectory,
    /// 389 Directory Server and Red Hat Directory Server.
    Ds389,
}

impl AccountPolicy {
    /// The name the configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            AccountPolicy::Auto => "auto",
            AccountPolicy::OpenLdap => "openldap",
            AccountPolicy::ActiveDirectory => "active_directory",
            AccountPolicy::Ds389 => "389ds",
        }
    }
}

pub const DEFAULT_BASE_DN: &str = "ou=people,dc=countersign,dc=local";

impl Validator<'_> {
    /// Every `[[directory]]`, in order; names are unique.
    pub(super) fn directories(
        &mut self,
        sections: &[(DirectorySection, Span)],
    ) -> Vec<DirectoryConfig> {
        let mut dirs: Vec<DirectoryConfig> = Vec::new();
        for (i, (d, span)) in sections.iter().enumerate() {
            let key = format!("directory[{i}]");
            if dirs.iter().any(|x| x.name() == d.name) {
                self.error(
                    Some(span.clone()),
                    format!("{key}.name"),
                    format!("directory {:?} is defined twice", d.name),
                );
            }
            let dir = match d.kind.as_str() {
                "ldap" => self
                    .ldap_directory(d, span, &key)
                    .map(|l| DirectoryConfig::Ldap(Box::new(l))),
                "local" => Some(DirectoryConfig::Local(self.local_directory(d, span, &key))),
                other => {
                    self.error(
                        Some(span.clone()),
                        format!("{key}.type"),
                        format!("{other:?}: expected \"local\" or \"ldap\""),
                    );
                    None
                }
            };
            dirs.extend(dir);
        }
        dirs
    }

    fn local_directory(
        &mut self,
        d: &DirectorySection,
        span: &Span,
        key: &str,
    ) -> LocalDirectoryConfig {
        for (field, set) in [
            ("url", d.url.is_some()),
            ("starttls", d.starttls.is_some()),
            ("bind_dn", d.bind_dn.is_some()),
            ("user_base_dns", d.user_base_dns.is_some()),
            ("manager_attribute", d.manager_attribute.is_some()),
            ("account_policy", d.account_policy.is_some()),
            ("password_policy_dn", d.password_policy_dn.is_some()),
        ] {
            if set {
                self.key_error(
                    span,
                    field,
                    format!("{key}.{field}"),
                    "only for directories of type ldap",
                );
            }
        }
        let match_attributes: Vec<String> = d
            .match_attributes
            .clone()
            .unwrap_or_else(|| vec!["uid".to_owned()])
            .into_iter()
            .map(|a| a.to_lowercase())
            .collect();
        if match_attributes.is_empty() {
            self.error(
                Some(span.clone()),
                format!("{key}.match_attributes"),
                "must name at least one attribute",
            );
        }
        LocalDirectoryConfig {
            name: d.name.clone(),
            base_dn: d
                .base_dn
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_DN.to_owned()),
            match_attributes,
        }
    }

    fn ldap_directory(
        &mut self,
        d: &DirectorySection,
        span: &Span,
        key: &str,
    ) -> Option<LdapDirectoryConfig> {
        let Some(url) = d.url.clone() else {
            self.error(
                Some(span.clone()),
                format!("{key}.url"),
                "missing: an ldap directory needs url",
            );
            return None;
        };
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            self.key_error(
                span,
                "url",
                format!("{key}.url"),
                format!("{url:?}: expected ldap://HOST:PORT or ldaps://HOST:PORT"),
            );
        }
        let starttls = d.starttls.unwrap_or(false);
        if starttls && url.starts_with("ldaps://") {
            self.key_error(
                span,
                "starttls",
                format!("{key}.starttls"),
                "StartTLS on an ldaps:// URL: TLS is already there",
            );
        }
        let ca_pem = d
            .ca_file
            .as_ref()
            .and_then(|p| self.pem_file(span, At::Field("ca_file"), &format!("{key}.ca_file"), p));
        let bind_password = self.service_account(d, span, key);
        let user_base_dns = d.user_base_dns.clone().unwrap_or_default();
        if user_base_dns.is_empty() {
            self.error(
                Some(span.clone()),
                format!("{key}.user_base_dns"),
                "missing: an ldap directory needs user_base_dns",
            );
        }
        self.match_rules(d, span, key);
        if bind_password.as_ref().is_some_and(|(p, _)| p.is_empty()) {
            // An empty password makes the service bind anonymous on servers that allow it.
            self.key_error(
                span,
                "bind_dn",
                format!("{key}.bind_password_file"),
                "the service account's password is empty",
            );
        }
        let on_unavailable = d.on_unavailable.as_deref().unwrap_or("stop");
        if !["stop", "next"].contains(&on_unavailable) {
            self.key_error(
                span,
                "on_unavailable",
                format!("{key}.on_unavailable"),
                format!("{on_unavailable:?}: expected stop or next"),
            );
        }
        let account_policy = self.account_policy(d, span, key);
        let attr =
            |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_owned());
        let (bind_password, bind_password_from) = bind_password.unzip();
        Some(LdapDirectoryConfig {
            name: d.name.clone(),
            url,
            starttls,
            ca_file: ca_pem
                .as_ref()
                .and(d.ca_file.as_deref())
                .map(|p| self.path(p)),
            ca_pem,
            bind_dn: d.bind_dn.clone(),
            bind_password,
            bind_password_from,
            user_base_dns,
            match_attributes: d
                .match_attributes
                .clone()
                .unwrap_or_else(|| vec!["uid".to_owned()]),
            match_filter: d.match_filter.clone(),
            mail_attribute: attr(&d.mail_attribute, "mail"),
            mobile_attribute: attr(&d.mobile_attribute, "mobile"),
            display_name_attribute: attr(&d.display_name_attribute, "cn"),
            manager_attribute: attr(&d.manager_attribute, "manager"),
            preferred_mechanism_attribute: attr(
                &d.preferred_mechanism_attribute,
                "ds-auth-preferred-otp-delivery-mechanism",
            ),
            id_attribute: d.id_attribute.clone(),
            attributes: d.attributes.clone().unwrap_or_default(),
            timeout: self.duration(
                span,
                &format!("{key}.timeout"),
                d.timeout.as_deref(),
                Duration::from_secs(10),
            ),
            stop_when_unavailable: on_unavailable != "next",
            account_policy,
            password_policy_dn: d.password_policy_dn.clone(),
        })
    }

    /// `account_policy` (default `auto`).
    fn account_policy(&mut self, d: &DirectorySection, span: &Span, key: &str) -> AccountPolicy {
        match d.account_policy.as_deref().unwrap_or("auto") {
            "auto" => AccountPolicy::Auto,
            "openldap" => AccountPolicy::OpenLdap,
            "active_directory" => AccountPolicy::ActiveDirectory,
            "389ds" => AccountPolicy::Ds389,
            other => {
                self.key_error(
                    span,
                    "account_policy",
                    format!("{key}.account_policy"),
                    format!("{other:?}: expected auto, openldap, active_directory or 389ds"),
                );
                AccountPolicy::Auto
            }
        }
    }

    /// `bind_dn` with its password (both or neither; the password not empty).
    fn service_account(
        &mut self,
        d: &DirectorySection,
        span: &Span,
        key: &str,
    ) -> Option<(Secret, SecretSource)> {
        let files = (
            d.bind_password_file.as_deref(),
            d.bind_password_env.as_deref(),
        );
        let bind_password = self.secret(
            span,
            key,
            "bind_password",
            files,
            At::Field("bind_password_file"),
        );
        if d.bind_dn.is_some() != (d.bind_password_file.is_some() || d.bind_password_env.is_some())
        {
            self.key_error(
                span,
                "bind_dn",
                format!("{key}.bind_dn"),
                "bind_dn and bind_password_file (or _env) go together",
            );
        }
        bind_password
    }

    /// `match_filter` and `match_attributes` of an ldap directory.
    fn match_rules(&mut self, d: &DirectorySection, span: &Span, key: &str) {
        if let Some(f) = &d.match_filter {
            if !(f.starts_with('(') && f.ends_with(')')) {
                self.key_error(
                    span,
                    "match_filter",
                    format!("{key}.match_filter"),
                    format!("{f:?}: a filter is written in parentheses"),
                );
            } else if ldap3::parse_filter(f).is_err() {
                self.key_error(
                    span,
                    "match_filter",
                    format!("{key}.match_filter"),
                    format!("{f:?} is not an LDAP filter (RFC 4515)"),
                );
            }
        }
        if d.match_attributes
            .as_ref()
            .is_some_and(|m| m.is_empty() || m.iter().any(|a| a.trim().is_empty()))
        {
            self.key_error(
                span,
                "match_attributes",
                format!("{key}.match_attributes"),
                "must name at least one attribute, none empty",
            );
        }
    }
}
