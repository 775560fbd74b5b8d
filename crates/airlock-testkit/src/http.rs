//! A deliberately tiny HTTP/1.1 client over `TcpStream`: one request per connection, the path sent
//! byte for byte (so tests can send `%2f`, `%2F`, `..` and other things a URL library would
//! normalise), `Content-Length` bodies, chunked or length-delimited or EOF-delimited responses.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};
use flate2::read::GzDecoder;

/// A request being built; `send` panics on transport errors, `try_send` returns them.
#[must_use]
pub struct HttpRequest {
    host_port: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
    write_chunk: Option<(usize, Duration)>,
}

impl HttpRequest {
    /// `path` is sent verbatim in the request line (it should start with `/`).
    pub fn new(host_port: &str, method: &str, path: &str) -> HttpRequest {
        HttpRequest {
            host_port: host_port.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(60),
            write_chunk: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Adds a bearer token when one is given.
    pub fn maybe_bearer(self, token: Option<&str>) -> Self {
        match token {
            Some(t) => self.bearer(t),
            None => self,
        }
    }

    /// A JSON body with `content-type: application/json`.
    pub fn json(self, value: &serde_json::Value) -> Self {
        let bytes = serde_json::to_vec(value).expect("JSON serialises");
        self.header("content-type", "application/json").body(bytes)
    }

    /// A raw body (no content-type added).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Writes the body in pieces of `chunk` bytes with `pause` between them (slow uploads).
    pub fn slow_body(mut self, chunk: usize, pause: Duration) -> Self {
        self.write_chunk = Some((chunk.max(1), pause));
        self
    }

    /// Sends the request; panics on a transport error.
    #[track_caller]
    pub fn send(self) -> HttpResponse {
        let what = format!("{} {}", self.method, self.path);
        match self.try_send() {
            Ok(r) => r,
            Err(e) => panic!("HTTP request {what} failed: {e:#}"),
        }
    }

    pub fn try_send(self) -> anyhow::Result<HttpResponse> {
        let mut stream = TcpStream::connect(&self.host_port)
            .with_context(|| format!("connecting to {}", self.host_port))?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        stream.set_nodelay(true)?;

        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: {}\r\n",
            self.method, self.path, self.host_port
        );
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has("connection") {
            head.push_str("connection: close\r\n");
        }
        if !has("content-length")
            && (!self.body.is_empty() || matches!(self.method.as_str(), "PUT" | "POST"))
        {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .context("writing request head")?;
        match self.write_chunk {
            None => stream
                .write_all(&self.body)
                .context("writing request body")?,
            Some((chunk, pause)) => {
                for piece in self.body.chunks(chunk) {
                    stream.write_all(piece).context("writing request body")?;
                    std::thread::sleep(pause);
                }
            }
        }
        stream.flush()?;
        read_response(stream, &self.method)
    }
}

/// A response: status, headers in order (names lower-cased), body bytes as sent on the wire
/// (chunked encoding removed, content-encoding kept).
#[derive(Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.decoded_body()).into_owned()
    }

    /// The body with any `content-encoding: gzip` removed.
    pub fn decoded_body(&self) -> Vec<u8> {
        if self
            .header("content-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
        {
            let mut out = Vec::new();
            GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("gzip body decodes");
            out
        } else {
            self.body.clone()
        }
    }

    /// The body parsed as JSON; panics (showing the response) if it isn't.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.decoded_body()) {
            Ok(v) => v,
            Err(e) => panic!("response body is not JSON ({e}): {self:?}"),
        }
    }

    /// Panics unless the status is `status`.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        self
    }

    /// Panics unless the status is 2xx.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            (200..300).contains(&self.status),
            "expected a 2xx status: {self:?}"
        );
        self
    }

    /// Panics unless the body is JSON with a non-empty string `error`; returns that message.
    #[track_caller]
    pub fn error_message(&self) -> String {
        let v: serde_json::Value = match serde_json::from_slice(&self.decoded_body()) {
            Ok(v) => v,
            Err(e) => panic!("error body is not JSON ({e}): {self:?}"),
        };
        match v.get("error").and_then(|e| e.as_str()) {
            Some(msg) if !msg.trim().is_empty() => msg.to_owned(),
            _ => panic!("error body has no non-empty string `error`: {self:?}"),
        }
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "HTTP {}", self.status)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        let body = self.decoded_body();
        let shown = &body[..body.len().min(4000)];
        write!(f, "\n{}", String::from_utf8_lossy(shown))?;
        if body.len() > shown.len() {
            write!(f, "… ({} bytes in all)", body.len())?;
        }
        Ok(())
    }
}

fn read_response(stream: TcpStream, method: &str) -> anyhow::Result<HttpResponse> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).context("reading status line")?;
    if line.is_empty() {
        bail!("connection closed before a response");
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x status line: {line:?}");
    }
    let status: u16 = parts
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("bad status line {line:?}"))?;

    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).context("reading headers")?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .with_context(|| format!("bad header line {l:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    let mut body = Vec::new();
    let no_body =
        method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
        // nothing
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line).context("reading chunk size")?;
            let size_hex = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_hex, 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                // trailers until an empty line
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader
                .read_exact(&mut body[start..])
                .context("reading chunk")?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).context("reading chunk end")?;
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().context("bad content-length")?;
        body.resize(len, 0);
        reader.read_exact(&mut body).context("reading body")?;
    } else {
        reader
            .read_to_end(&mut body)
            .context("reading body to EOF")?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::HttpRequest;

    /// Serves one canned response and returns the raw request it received.
    fn one_shot(response: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then as much body as content-length says.
            loop {
                let n = s.read(&mut buf).expect("read");
                req.extend_from_slice(&buf[..n]);
                if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse::<usize>().expect("len"));
                    while req.len() < end + 4 + len {
                        let n = s.read(&mut buf).expect("read");
                        req.extend_from_slice(&buf[..n]);
                    }
                    break;
                }
            }
            s.write_all(response).expect("write");
            req
        });
        (addr, handle)
    }

    #[test]
    fn sends_the_path_verbatim_and_reads_chunked_bodies() {
        let (addr, server) =
            one_shot(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        let r = HttpRequest::new(&addr, "PUT", "/@s%2fp/../x")
            .bearer("tok")
            .body("abc")
            .send();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello world");
        assert_eq!(r.header("x-a"), Some("b"));
        let req = String::from_utf8(server.join().expect("server")).expect("utf8");
        assert!(req.starts_with("PUT /@s%2fp/../x HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("authorization: Bearer tok\r\n"), "{req}");
        assert!(req.contains("content-length: 3\r\n"), "{req}");
        assert!(req.ends_with("\r\n\r\nabc"), "{req}");
    }

    #[test]
    fn reads_length_delimited_and_empty_bodies() {
        let (addr, _s) =
            one_shot(b"HTTP/1.1 404 Not Found\r\ncontent-length: 17\r\n\r\n{\"error\":\"nope\"}\n");
        let r = HttpRequest::new(&addr, "GET", "/x").send();
        assert_eq!(r.status, 404);
        assert_eq!(r.error_message(), "nope");
        let (addr, _s) = one_shot(b"HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\n\r\n");
        let r = HttpRequest::new(&addr, "GET", "/x").send();
        assert_eq!(r.status, 304);
        assert!(r.body.is_empty());
    }
}
