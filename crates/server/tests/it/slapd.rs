//! A real OpenLDAP `slapd` for the directory tests: its own config (mdb, ppolicy, countersign's
//! schema from contrib/, TLS with the test CA), seeded offline with `slapadd`, serving
//! `ldap://` (StartTLS) and `ldaps://` on free ports; stoppable and restartable mid-test.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::fixtures::{TlsFiles, closed_port, tls_files};

pub const BASE: &str = "ou=people,dc=example,dc=com";

/// Debian puts slapd and slapadd in /usr/sbin, which a non-root PATH may lack.
fn sbin(tool: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(tool);
    if p.exists() { p } else { PathBuf::from(tool) }
}

/// Users with mail, mobile and managers; the awkward cases the issue lists.
const SEED: &str = r#"dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=others,dc=example,dc=com
objectClass: organizationalUnit
ou: others

dn: cn=countersign,dc=example,dc=com
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: countersign
userPassword: service-password

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: countersignOtpUser
uid: alice
cn: Alice Liddell
sn: Liddell
mail: alice@example.com
mobile: +15550100001
manager: uid=bob,ou=people,dc=example,dc=com
ds-auth-preferred-otp-delivery-mechanism: SMS
ds-auth-preferred-otp-delivery-mechanism: Email
userPassword: alice-password

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob Manager
sn: Manager
mail: bob@example.com
mobile: +15550100002
userPassword: bob-password

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
mail: carol@example.com
manager: uid=ghost,ou=people,dc=example,dc=com
userPassword: carol-password

dn: uid=dave,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: D
mail: dave@example.com
manager: uid=dave,ou=people,dc=example,dc=com
userPassword: dave-password

dn: uid=frank,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: frank
cn: Frank
sn: F
mail: frank@example.com
manager: uid=boss,ou=others,dc=example,dc=com
userPassword: frank-password

dn: uid=boss,ou=others,dc=example,dc=com
objectClass: inetOrgPerson
uid: boss
cn: Boss Elsewhere
sn: B
mail: boss@example.com

dn: uid=erin,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: erin
cn: Erin Locked
sn: E
mail: erin@example.com
pwdAccountLockedTime: 000001010000Z
userPassword: erin-password

dn: uid=o'brien,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: o'brien
cn: Pat O'Brien
sn: O'Brien
mail: obrien@example.com
userPassword: obrien-password

dn: uid=a*b,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: a*b
cn: Star
sn: Star
mail: star@example.com
userPassword: star-password

dn: uid=ab,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: ab
cn: Plain AB
sn: AB
mail: ab@example.com
userPassword: ab-password

dn: uid=x(y),ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: x(y)
cn: Paren
sn: Paren
mail: paren@example.com
userPassword: paren-password

dn:: dWlkPcO8LG91PXBlb3BsZSxkYz1leGFtcGxlLGRjPWNvbQ==
objectClass: inetOrgPerson
uid:: w7w=
cn:: w7w=
sn: U
mail: umlaut@example.com
userPassword: umlaut-password

dn: uid=twin,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: twin
cn: Twin One
sn: T
mail: twin1@example.com
userPassword: twin-password

dn: cn=Twin Two,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: twin
cn: Twin Two
sn: T
mail: twin2@example.com
userPassword: twin-password
"#;

pub struct Slapd {
    child: Option<Child>,
    pub port: u16,
    pub ldaps_port: u16,
    conf: PathBuf,
    pub tls: TlsFiles,
    dir: TempDir,
}

impl Slapd {
    pub fn start() -> Slapd {
        let dir = TempDir::new().unwrap();
        let tls = tls_files(dir.path());
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).unwrap();
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/countersign.schema");
        let conf = dir.path().join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\n\
                 include /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\n\
                 include /etc/ldap/schema/nis.schema\n\
                 include {schema}\n\
                 modulepath /usr/lib/ldap\n\
                 moduleload back_mdb\n\
                 moduleload ppolicy\n\
                 pidfile {dir}/slapd.pid\n\
                 TLSCertificateFile {cert}\n\
                 TLSCertificateKeyFile {key}\n\
                 TLSCACertificateFile {ca}\n\
                 database mdb\n\
                 suffix \"dc=example,dc=com\"\n\
                 rootdn \"cn=admin,dc=example,dc=com\"\n\
                 rootpw admin-password\n\
                 directory {db}\n\
                 overlay ppolicy\n",
                schema = schema.display(),
                dir = dir.path().display(),
                cert = tls.cert.display(),
                key = tls.key.display(),
                ca = tls.ca.display(),
                db = db.display(),
            ),
        )
        .unwrap();
        let seed = dir.path().join("seed.ldif");
        std::fs::write(&seed, SEED).unwrap();
        let out = Command::new(sbin("slapadd"))
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&seed)
            .output()
            .expect("slapadd (scripts/test installs slapd)");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Slapd {
            child: None,
            port: closed_port(),
            ldaps_port: closed_port(),
            conf,
            tls,
            dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.port, self.ldaps_port
        );
        let child = Command::new(sbin("slapd"))
            .arg("-f")
            .arg(&self.conf)
            .arg("-h")
            .arg(urls)
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd (scripts/test installs slapd)");
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.ldaps_port)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("slapd did not start");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// A `[[directory]]` of type ldap for this server; `url_and_tls` picks the transport.
    pub fn directory_config(&self, name: &str, url_and_tls: &str) -> String {
        let pw = self.dir.path().join("service.pw");
        std::fs::write(&pw, "service-password\n").unwrap();
        format!(
            "[[directory]]\nname = \"{name}\"\ntype = \"ldap\"\n{url_and_tls}\nca_file = \"{ca}\"\n\
             bind_dn = \"cn=countersign,dc=example,dc=com\"\nbind_password_file = \"{pw}\"\n\
             user_base_dns = [\"{BASE}\"]\nattributes = [\"sn\"]\ntimeout = \"3s\"\n",
            ca = self.tls.ca.display(),
            pw = pw.display(),
        )
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
