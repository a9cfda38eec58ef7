//! The bench's own OpenLDAP slapd: `users` directory users under one base, and the names and
//! addresses the suites use for local and directory users.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

pub const DIR_BASE: &str = "ou=people,dc=example,dc=com";

pub fn dir_phone(i: usize) -> String {
    format!("+1666{i:07}")
}

pub fn local_dn(i: usize) -> String {
    format!("uid=user{i},ou=people,dc=countersign,dc=local")
}

pub fn dir_dn(i: usize) -> String {
    format!("uid=duser{i},{DIR_BASE}")
}

/// An OpenLDAP slapd of the bench's own with `users` directory users (plaintext passwords, so
/// the directory's own hashing is not what is measured), each managed by duser0.
pub struct Slapd {
    child: std::process::Child,
    pub addr: String,
}

impl Slapd {
    pub fn start(dir: &std::path::Path, port: u16, users: usize) -> anyhow::Result<Slapd> {
        let db = dir.join("slapd-db");
        std::fs::create_dir_all(&db)?;
        let conf = dir.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
                 pidfile {d}/slapd.pid\ndatabase mdb\nsuffix \"dc=example,dc=com\"\n\
                 rootdn \"cn=admin,dc=example,dc=com\"\nrootpw admin\ndirectory {db}\nindex uid eq\n",
                d = dir.display(),
                db = db.display()
            ),
        )?;
        let mut ldif = String::from(
            "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: cn=countersign,dc=example,dc=com\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: countersign\nuserPassword: service-password\n\n",
        );
        for i in 0..users {
            ldif += &format!(
                "dn: {}\nobjectClass: inetOrgPerson\nuid: duser{i}\ncn: Directory User {i}\nsn: U\nmail: {}\nmobile: {}\nmanager: {}\nuserPassword: bench-password\n\n",
                dir_dn(i),
                dir_mail(i),
                dir_phone(i),
                dir_dn(0)
            );
        }
        std::fs::write(dir.join("seed.ldif"), ldif)?;
        let sbin = |t: &str| {
            let p = std::path::Path::new("/usr/sbin").join(t);
            if p.exists() { p } else { PathBuf::from(t) }
        };
        let out = std::process::Command::new(sbin("slapadd"))
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(dir.join("seed.ldif"))
            .output()?;
        if !out.status.success() {
            bail!("slapadd: {}", String::from_utf8_lossy(&out.stderr));
        }
        let child = std::process::Command::new(sbin("slapd"))
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{port}/"))
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting slapd (apt-get install slapd)")?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Slapd {
                    child,
                    addr: format!("127.0.0.1:{port}"),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("slapd did not start")
    }
}

impl Slapd {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local user's mobile number (where the SMS gateway sends their codes).
pub fn phone(i: usize) -> String {
    format!("+1555{i:07}")
}

/// A directory user's e-mail address (where the SMTP server sends their codes).
pub fn dir_mail(i: usize) -> String {
    format!("duser{i}@example.com")
}
