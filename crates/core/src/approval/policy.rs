//! Approval policies: which approval profile governs a user's login. The seed's rules, to the
//! letter: policies are evaluated top to bottom and the first match wins; with no policies
//! every user gets the default profile; once any policy exists, a user no policy matches cannot
//! log in. A policy looks at one attribute of the user as their directory describes them
//! (LDAP attributes such as `memberOf` or `departmentNumber`, or a local user's attributes);
//! a multi-valued attribute matches when any of its values does.

use regex::{Regex, RegexBuilder};

use crate::model::User;

/// One value a policy accepts: the exact text ignoring case, a `*` wildcard pattern, or an
/// anchored regular expression written `re:…` (also ignoring case; the whole value must match).
#[derive(Debug, Clone)]
pub struct ValuePattern {
    written: String,
    regex: Regex,
}

/// Largest compiled pattern accepted: a policy is configuration, not a place for a program.
const MAX_PATTERN_SIZE: usize = 1 << 20;

impl ValuePattern {
    pub fn parse(written: &str) -> Result<Self, String> {
        let source = match written.strip_prefix("re:") {
            Some(re) => format!("^(?:{re})$"),
            None => {
                let parts: Vec<String> = written.split('*').map(regex::escape).collect();
                format!("^{}$", parts.join(".*"))
            }
        };
        let regex = RegexBuilder::new(&source)
            .case_insensitive(true)
            .size_limit(MAX_PATTERN_SIZE)
            .build()
            .map_err(|e| format!("invalid pattern {written:?}: {e}"))?;
        Ok(Self {
            written: written.to_owned(),
            regex,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.written
    }

    pub fn matches(&self, value: &str) -> bool {
        self.regex.is_match(value.trim())
    }
}

/// One `[[policy]]`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How the audit names it: its configured name, or its place in the list.
    pub name: String,
    pub profile: String,
    pub directory: String,
    /// Lower-cased.
    pub attribute: String,
    pub values: Vec<ValuePattern>,
}

impl Policy {
    /// Whether the policy applies to `user`: the user comes from the policy's directory and
    /// some value of the attribute matches some pattern.
    pub fn matches(&self, user: &User) -> bool {
        user.directory == self.directory
            && attribute_values(user, &self.attribute)
                .iter()
                .any(|v| self.values.iter().any(|p| p.matches(v)))
    }
}

/// The values of attribute `name` (lower-case) of `user`. The names a directory maps into the
/// user's own fields answer from them: `uid`/`username`, `mail`, `mobile`, `cn`/`displayname`,
/// `dn`/`entrydn`; every other name is looked up among the user's other attributes.
pub fn attribute_values<'a>(user: &'a User, name: &str) -> Vec<&'a str> {
    let name = name.to_ascii_lowercase();
    let own: Vec<&str> = match name.as_str() {
        "uid" | "username" => vec![user.username.as_str()],
        "mail" => user.mail.iter().map(String::as_str).collect(),
        "mobile" => user.mobile.iter().map(String::as_str).collect(),
        "cn" | "displayname" => user.display_name.iter().map(String::as_str).collect(),
        "dn" | "entrydn" => vec![user.dn.as_str()],
        _ => Vec::new(),
    };
    let other = user
        .attributes
        .get(&name)
        .into_iter()
        .flatten()
        .map(String::as_str);
    let mut values = own;
    values.extend(other);
    values
}

/// What the policies say about a user.
#[derive(Debug, Clone, Copy)]
pub enum PolicyChoice<'a> {
    /// No policies are configured: the default profile applies.
    Default,
    /// The first policy that matched.
    Matched(&'a Policy),
    /// Policies exist and none matched: the user may not log in.
    NoMatch,
}

/// The `[[policy]]` list, in order.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    list: Vec<Policy>,
}

impl Policies {
    pub fn new(list: Vec<Policy>) -> Self {
        Self { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.list.iter()
    }

    /// Top to bottom, first match wins.
    pub fn choose(&self, user: &User) -> PolicyChoice<'_> {
        if self.list.is_empty() {
            return PolicyChoice::Default;
        }
        self.list
            .iter()
            .find(|p| p.matches(user))
            .map_or(PolicyChoice::NoMatch, PolicyChoice::Matched)
    }

    /// The attributes the policies on `directory` read, so the directory fetches them.
    pub fn attributes_for(&self, directory: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for p in self.list.iter().filter(|p| p.directory == directory) {
            if !names.contains(&p.attribute) {
                names.push(p.attribute.clone());
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dn;

    fn policy(name: &str, directory: &str, attribute: &str, values: &[&str]) -> Policy {
        Policy {
            name: name.into(),
            profile: format!("profile-of-{name}"),
            directory: directory.into(),
            attribute: attribute.into(),
            values: values
                .iter()
                .map(|v| ValuePattern::parse(v).unwrap())
                .collect(),
        }
    }

    fn user(directory: &str, attrs: &[(&str, &[&str])]) -> User {
        let mut u = User::new(directory, Dn::new("uid=bob,ou=people,dc=x"), "bob");
        u.mail = vec!["bob@example.com".into()];
        for (k, vs) in attrs {
            u.attributes
                .insert((*k).into(), vs.iter().map(|v| (*v).to_owned()).collect());
        }
        u
    }

    fn chosen(policies: &Policies, u: &User) -> Option<String> {
        match policies.choose(u) {
            PolicyChoice::Matched(p) => Some(p.name.clone()),
            PolicyChoice::Default => Some("default".into()),
            PolicyChoice::NoMatch => None,
        }
    }

    #[test]
    fn policy_table() {
        let dba = "cn=DBA,ou=groups,dc=x";
        let table: Vec<(&str, Vec<Policy>, User, Option<&str>)> = vec![
            (
                "no policies: default for everyone",
                vec![],
                user("corp", &[]),
                Some("default"),
            ),
            (
                "first match wins over a later one",
                vec![
                    policy("first", "corp", "memberof", &[dba]),
                    policy("second", "corp", "memberof", &["*"]),
                ],
                user("corp", &[("memberof", &["cn=dba,ou=groups,dc=x"])]),
                Some("first"),
            ),
            (
                "a later policy when the first does not match",
                vec![
                    policy("first", "corp", "memberof", &[dba]),
                    policy("second", "corp", "departmentnumber", &["42"]),
                ],
                user("corp", &[("departmentnumber", &["42"])]),
                Some("second"),
            ),
            (
                "unmatched user refused",
                vec![policy("first", "corp", "memberof", &[dba])],
                user("corp", &[("memberof", &["cn=ops,ou=groups,dc=x"])]),
                None,
            ),
            (
                "wildcard",
                vec![policy("w", "corp", "mail", &["*@EXAMPLE.com"])],
                user("corp", &[]),
                Some("w"),
            ),
            (
                "wildcard is anchored and escapes the rest",
                vec![policy("w", "corp", "title", &["a.c*"])],
                user("corp", &[("title", &["abcd", "xa.c"])]),
                None,
            ),
            (
                "multi-valued attribute: any value",
                vec![policy("m", "corp", "memberof", &[dba])],
                user(
                    "corp",
                    &[("memberof", &["cn=ops,dc=x", "CN=dba, ou=groups,dc=x", dba])],
                ),
                Some("m"),
            ),
            (
                "regular expression, anchored",
                vec![policy("re", "corp", "departmentnumber", &["re:4[0-9]"])],
                user("corp", &[("departmentnumber", &["142", "43"])]),
                Some("re"),
            ),
            (
                "regular expression does not match a substring",
                vec![policy("re", "corp", "departmentnumber", &["re:4[0-9]"])],
                user("corp", &[("departmentnumber", &["142"])]),
                None,
            ),
            (
                "a policy on another directory does not apply",
                vec![policy("other", "local", "uid", &["bob"])],
                user("corp", &[]),
                None,
            ),
            (
                "local user's attribute",
                vec![policy("local", "local", "employeetype", &["contractor"])],
                user("local", &[("employeetype", &["Contractor"])]),
                Some("local"),
            ),
            (
                "the username as uid",
                vec![policy("uid", "corp", "uid", &["BOB"])],
                user("corp", &[]),
                Some("uid"),
            ),
        ];
        for (case, list, u, want) in table {
            let policies = Policies::new(list);
            assert_eq!(chosen(&policies, &u).as_deref(), want, "{case}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_the_pattern_named() {
        let err = ValuePattern::parse("re:(unclosed").unwrap_err();
        assert!(err.contains("re:(unclosed"), "{err}");
        assert!(ValuePattern::parse("re:a{1000}{1000}").is_err());
    }

    #[test]
    fn the_attributes_a_directory_must_fetch() {
        let policies = Policies::new(vec![
            policy("a", "corp", "memberof", &["x"]),
            policy("b", "local", "employeetype", &["x"]),
            policy("c", "corp", "departmentnumber", &["x"]),
            policy("d", "corp", "memberof", &["y"]),
        ]);
        assert_eq!(
            policies.attributes_for("corp"),
            vec!["memberof", "departmentnumber"]
        );
    }
}
