//! The demo and development courier: each message becomes a file (readable by its owner only)
//! in a directory and, optionally, a few lines on standard error.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use countersign_core::ports::{Courier, DeliveryError, OutboundMessage};

use crate::terminal::{visible, visible_lines};

pub struct FileCourier {
    mechanism: String,
    directory: PathBuf,
    print: bool,
    /// E-mail-like messages have a subject; SMS-like ones do not.
    with_subject: bool,
    counter: AtomicU64,
}

impl FileCourier {
    pub fn new(mechanism: &str, directory: PathBuf, print: bool, with_subject: bool) -> Self {
        Self {
            mechanism: mechanism.to_owned(),
            directory,
            print,
            with_subject,
            counter: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Courier for FileCourier {
    async fn send(&self, message: &OutboundMessage) -> Result<(), DeliveryError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self
            .directory
            .join(format!("{now}-{}-{n}.txt", std::process::id()));
        // Subjects and texts may come from the client (Deliver OTP's message texts): shown
        // escaped, so they cannot add header lines to the file or repaint a terminal.
        let subject = if self.with_subject {
            format!("Subject: {}\n", visible(&message.subject))
        } else {
            String::new()
        };
        let body = visible_lines(message.body.expose());
        let text = format!(
            "Mechanism: {}\nTo: {}\n{subject}\n{body}\n",
            self.mechanism,
            visible(&message.to),
        );
        let (dir, p, t) = (self.directory.clone(), path.clone(), text.clone());
        tokio::task::spawn_blocking(move || write_private(&dir, &p, &t))
            .await
            .map_err(|e| DeliveryError::Failed(e.to_string()))?
            .map_err(|e| DeliveryError::Failed(format!("cannot write {}: {e}", path.display())))?;
        if self.print {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "\n----- {} message to {} -----",
                self.mechanism,
                visible(&message.to)
            );
            let _ = writeln!(err, "{subject}{body}");
            let _ = writeln!(err, "----- (saved as {}) -----\n", path.display());
        }
        Ok(())
    }
}

fn write_private(dir: &std::path::Path, path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::Secret;

    #[tokio::test]
    async fn client_texts_cannot_add_lines_or_escape_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let courier = FileCourier::new("Email", dir.path().to_path_buf(), false, true);
        let message = OutboundMessage {
            to: "alice@example.com".into(),
            subject: "Code\nTo: mallory@example.com".into(),
            body: Secret::new("Your code\n123456\u{1b}[2J"),
        };
        courier.send(&message).await.unwrap();
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(
            text,
            "Mechanism: Email\nTo: alice@example.com\nSubject: Code\\nTo: mallory@example.com\n\nYour code\n123456\\u{1B}[2J\n"
        );
    }
}
