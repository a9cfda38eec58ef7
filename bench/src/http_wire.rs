//! A bare HTTP/1.1 client over one TCP connection (RFC 9112): a request written in one piece,
//! a response read as it arrives (`Content-Length` or chunked bodies), and an event stream read
//! chunk by chunk. The approval suites hold thousands of waiting connections and time single
//! answers to the microsecond; a socket per waiter, with nothing pooled or buffered behind the
//! bench's back, keeps both exact.

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest status or header line accepted.
const MAX_LINE: u64 = 8192;
/// Largest body read whole (the API's answers and the approval page are a few KiB).
const MAX_BODY: usize = 1 << 20;

pub struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

/// A response's status, its header fields (names lower-cased, in order) and its body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header field `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header field `name` (lower case), e.g. each `set-cookie`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response's head: status, how its body is framed, its header fields.
struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    headers: Vec<(String, String)>,
}

impl Conn {
    pub async fn connect(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
            host: addr.to_owned(),
        })
    }

    /// Writes `method path` with `headers` (each `Name: value`) and `body`, in one write.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[String],
        body: &[u8],
    ) -> anyhow::Result<()> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for h in headers {
            req += h;
            req += "\r\n";
        }
        if !body.is_empty() || method == "POST" {
            req += &format!("Content-Length: {}\r\n", body.len());
        }
        req += "\r\n";
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.get_mut().write_all(&bytes).await?;
        Ok(())
    }

    /// The status line and headers of the next response: status, `Content-Length`, chunked.
    pub async fn head(&mut self) -> anyhow::Result<(u16, Option<usize>, bool)> {
        let h = self.full_head().await?;
        Ok((h.status, h.length, h.chunked))
    }

    async fn full_head(&mut self) -> anyhow::Result<Head> {
        let status_line = self.line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
        let (mut length, mut chunked, mut headers) = (None, false, Vec::new());
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                return Ok(Head {
                    status,
                    length,
                    chunked,
                    headers,
                });
            }
            let Some((name, value)) = line.split_once(':') else {
                bail!("bad header line {line:?}");
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
            headers.push((name.trim().to_ascii_lowercase(), value.to_owned()));
        }
    }

    /// A whole response: head and body.
    pub async fn response(&mut self) -> anyhow::Result<Response> {
        let Head {
            status,
            length,
            chunked,
            headers,
        } = self.full_head().await?;
        let mut body = Vec::new();
        if chunked {
            while let Some(chunk) = self.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    bail!("response body over {MAX_BODY} bytes");
                }
            }
        } else if let Some(n) = length {
            if n > MAX_BODY {
                bail!("response body of {n} bytes");
            }
            body.resize(n, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// The next chunk of a chunked body (RFC 9112 §7.1), `None` after the last one.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let size_line = self.line().await?;
        let size = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .with_context(|| format!("bad chunk size {size_line:?}"))?;
        if size > MAX_BODY {
            bail!("chunk of {size} bytes");
        }
        if size == 0 {
            // Trailer fields, then the empty line.
            while !self.line().await?.is_empty() {}
            return Ok(None);
        }
        let mut data = vec![0; size];
        self.stream.read_exact(&mut data).await?;
        if !self.line().await?.is_empty() {
            bail!("chunk not followed by CRLF");
        }
        Ok(Some(data))
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let n = (&mut self.stream)
            .take(MAX_LINE)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// Reads a `text/event-stream` body (HTML Living Standard §9.2.6) off a chunked response,
/// one event at a time: the chunk framing and the event framing are independent, so events
/// are cut from the de-chunked bytes at blank lines.
pub struct EventReader {
    pending: String,
}

impl EventReader {
    pub fn new() -> Self {
        EventReader {
            pending: String::new(),
        }
    }

    /// The `data` of the next `event: status` (comments and other events skipped).
    pub async fn next_status(&mut self, conn: &mut Conn) -> anyhow::Result<String> {
        loop {
            while let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut event = "message";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data += v.trim_start();
                    }
                }
                if event == "status" {
                    return Ok(data);
                }
            }
            let chunk = conn
                .chunk()
                .await?
                .ok_or_else(|| anyhow!("the event stream ended"))?;
            self.pending
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }
}
