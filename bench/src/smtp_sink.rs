//! A small SMTP server inside the bench process: real SMTP over TCP (RFC 5321 commands, one
//! reply per command, DATA ended by `<CRLF>.<CRLF>`), many transactions per session, no TLS or
//! AUTH. It hands the digits of each message's body to whoever waits on its recipient address
//! (the approval link instead, for a message that holds one), and counts the messages.
//! aiosmtpd (the tests' server) costs milliseconds per mail in Python, which would be the
//! bottleneck at 16 and 64 clients; this one costs microseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::Inboxes;

/// Longest command or message line accepted (RFC 5321 §4.5.3.1.6 asks for 1000 octets; the
/// slack is for lenient clients).
const MAX_LINE: u64 = 4096;
/// Largest message accepted; OTP mails are a few hundred bytes.
const MAX_MESSAGE: usize = 1 << 20;

/// Starts listening on a free loopback port; returns it.
pub async fn start(inboxes: Inboxes, count: Arc<AtomicU64>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("SMTP sink")?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (inboxes, count) = (inboxes.clone(), count.clone());
            tokio::spawn(async move {
                let _ = session(stream, inboxes, count).await;
            });
        }
    });
    Ok(port)
}

async fn session(
    stream: TcpStream,
    inboxes: Inboxes,
    count: Arc<AtomicU64>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 bench-smtp ESMTP\r\n").await?;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(
            Duration::from_secs(300),
            (&mut read).take(MAX_LINE).read_line(&mut line),
        )
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            return Ok(());
        }
        let verb = line
            .get(..4)
            .map(str::to_ascii_uppercase)
            .unwrap_or_default();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 bench-smtp\r\n",
            "MAIL" => {
                recipients.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                recipients.push(address(&line));
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let message = read_message(&mut read).await?;
                count.fetch_add(1, Ordering::Relaxed);
                let otp = approval_link(&message).unwrap_or_else(|| body_digits(&message));
                if let Ok(map) = inboxes.lock() {
                    for r in recipients.drain(..) {
                        if let Some(tx) = map.get(&r) {
                            let _ = tx.send(otp.clone());
                        }
                    }
                }
                b"250 OK\r\n"
            }
            "RSET" => {
                recipients.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address in `RCPT TO:<address>`.
fn address(line: &str) -> String {
    let inner = line
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(a, _)| a)
        .unwrap_or_default();
    inner.to_owned()
}

/// The message up to the line holding a single `.` (RFC 5321 §4.1.1.4).
async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> std::io::Result<String> {
    let mut message = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if (&mut *read).take(MAX_LINE).read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" || line == ".\n" {
            return Ok(message);
        }
        if message.len() + line.len() > MAX_MESSAGE {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        message.push_str(&line);
    }
}

/// The URL of an approval link in the body (`…/approve/<token>`), quoted-printable soft line
/// breaks (RFC 2045 §6.7) undone in case the mailer folded the long line.
fn approval_link(message: &str) -> Option<String> {
    let (_, body) = message.split_once("\r\n\r\n")?;
    let body = body.replace("=\r\n", "");
    let at = body.find("/approve/")?;
    let start = body[..at].rfind("http").unwrap_or(at);
    let end = body[at..]
        .find(|c: char| c.is_whitespace())
        .map_or(body.len(), |n| at + n);
    Some(body[start..end].to_owned())
}

/// The digits of the body (after the blank line that ends the headers, whose dates and IDs
/// hold digits too); the mechanism's texts around the OTP are empty in the bench's config.
fn body_digits(message: &str) -> String {
    let body = message
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    body.chars().filter(char::is_ascii_digit).collect()
}
