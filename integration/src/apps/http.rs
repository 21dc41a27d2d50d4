//! A small HTTP/1.1 static-file server's protocol side, independent of the
//! socket layer: bytes in, bytes out. The servers in `src/bin` drive it over
//! Sluice (`vcl`) or kernel sockets, so the two serve identical responses.
//!
//! Serves `GET` and `HEAD` of regular files under a root directory, with
//! keep-alive (HTTP/1.1 default, `Connection: close` honoured; HTTP/1.0 only
//! with `Connection: keep-alive`) and pipelining (requests are answered in
//! order, RFC 9112 §9.3.2). Bodies are read from the file in chunks as the
//! socket drains, so a slow client never makes the server hold a whole file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Largest request head (request line + headers) accepted; larger gets 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// Output is produced in chunks of this size.
const CHUNK: usize = 64 * 1024;
/// Most pipelined requests answered ahead of the client reading responses.
const MAX_QUEUED: usize = 32;

enum Body {
    Empty,
    File { file: File, remaining: u64 },
}

struct Response {
    head: Vec<u8>,
    head_sent: usize,
    body: Body,
    close_after: bool,
}

/// One connection's HTTP state.
pub struct HttpConnection {
    root: PathBuf,
    input: Vec<u8>,
    responses: VecDeque<Response>,
    /// Bytes of the current output chunk not yet written to the socket.
    chunk: Vec<u8>,
    chunk_sent: usize,
    /// No further requests are read (a `Connection: close` or an error).
    closing: bool,
    /// Requests answered so far.
    pub requests: u64,
}

impl HttpConnection {
    pub fn new(root: &Path) -> HttpConnection {
        HttpConnection {
            root: root.to_path_buf(),
            input: Vec::new(),
            responses: VecDeque::new(),
            chunk: Vec::new(),
            chunk_sent: 0,
            closing: false,
            requests: 0,
        }
    }

    /// Feeds bytes read from the socket and queues the responses of every
    /// complete request in them.
    pub fn on_input(&mut self, data: &[u8]) {
        if self.closing {
            return;
        }
        self.input.extend_from_slice(data);
        self.parse_requests();
    }

    /// The client half-closed: answer what was asked, then close.
    pub fn on_eof(&mut self) {
        self.closing = true;
        self.input.clear();
    }

    /// Whether more input is wanted now (false while too many responses
    /// wait, so a pipelining client is paced by its own reading).
    pub fn wants_input(&self) -> bool {
        !self.closing && self.responses.len() < MAX_QUEUED
    }

    fn parse_requests(&mut self) {
        while !self.closing && self.responses.len() < MAX_QUEUED {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&self.input) {
                Ok(httparse::Status::Complete(len)) => {
                    let response = self.answer(&req);
                    self.input.drain(..len);
                    self.requests += 1;
                    if response.close_after {
                        self.closing = true;
                    }
                    self.responses.push_back(response);
                }
                Ok(httparse::Status::Partial) => {
                    if self.input.len() > MAX_HEAD {
                        self.fail(431, "Request Header Fields Too Large");
                    }
                    return;
                }
                Err(httparse::Error::TooManyHeaders) => return self.fail(431, "Request Header Fields Too Large"),
                Err(_) => return self.fail(400, "Bad Request"),
            }
        }
    }

    fn fail(&mut self, status: u16, reason: &str) {
        self.responses.push_back(simple(status, reason, true));
        self.closing = true;
        self.input.clear();
    }

    fn answer(&self, req: &httparse::Request<'_, '_>) -> Response {
        let version = req.version.unwrap_or(1);
        let connection = header(req, "connection").map(|v| v.to_ascii_lowercase());
        let keep_alive = match version {
            0 => connection.as_deref() == Some("keep-alive"),
            _ => connection.as_deref() != Some("close"),
        };
        // A request body would have to be read and skipped; this server
        // serves files only, so a request with one ends the connection.
        let has_body = header(req, "content-length").is_some_and(|v| v.trim() != "0")
            || header(req, "transfer-encoding").is_some();
        let method = req.method.unwrap_or("");
        let close = !keep_alive || has_body;
        if method != "GET" && method != "HEAD" {
            return simple(405, "Method Not Allowed", close);
        }
        let Some(path) = req.path.and_then(|p| resolve(&self.root, p)) else {
            return simple(404, "Not Found", close);
        };
        match File::open(&path).and_then(|f| f.metadata().map(|m| (f, m))) {
            Ok((file, meta)) if meta.is_file() => {
                let len = meta.len();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nServer: sluice-http\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n{}\r\n",
                    if close { "Connection: close\r\n" } else { "" }
                );
                let body = if method == "HEAD" { Body::Empty } else { Body::File { file, remaining: len } };
                Response { head: head.into_bytes(), head_sent: 0, body, close_after: close }
            }
            _ => simple(404, "Not Found", close),
        }
    }

    /// The next bytes to write to the socket (empty when nothing is
    /// pending). Call [`HttpConnection::wrote`] with what the socket took.
    pub fn output(&mut self) -> io::Result<&[u8]> {
        if self.chunk_sent == self.chunk.len() {
            self.chunk.clear();
            self.chunk_sent = 0;
            self.refill()?;
        }
        Ok(&self.chunk[self.chunk_sent..])
    }

    /// Records that `n` bytes of [`HttpConnection::output`] were written.
    pub fn wrote(&mut self, n: usize) {
        self.chunk_sent = (self.chunk_sent + n).min(self.chunk.len());
        if self.chunk_sent == self.chunk.len() && self.responses.len() < MAX_QUEUED && !self.closing {
            self.parse_requests();
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        while self.chunk.len() < CHUNK {
            let Some(resp) = self.responses.front_mut() else { break };
            if resp.head_sent < resp.head.len() {
                self.chunk.extend_from_slice(&resp.head[resp.head_sent..]);
                resp.head_sent = resp.head.len();
                continue;
            }
            match &mut resp.body {
                Body::File { file, remaining } if *remaining > 0 => {
                    let want = (CHUNK - self.chunk.len()).min(*remaining as usize);
                    let start = self.chunk.len();
                    self.chunk.resize(start + want, 0);
                    let n = file.read(&mut self.chunk[start..])?;
                    self.chunk.truncate(start + n);
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being served"));
                    }
                    *remaining -= n as u64;
                }
                _ => {
                    self.responses.pop_front();
                }
            }
        }
        Ok(())
    }

    /// Whether the connection should be closed now: a response asked for it
    /// and everything before it has been written.
    pub fn finished(&self) -> bool {
        self.closing && self.responses.is_empty() && self.chunk_sent == self.chunk.len()
    }
}

fn simple(status: u16, reason: &str, close: bool) -> Response {
    let body = format!("{status} {reason}\n");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: sluice-http\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    Response { head: head.into_bytes(), head_sent: 0, body: Body::Empty, close_after: close }
}

fn header<'a>(req: &'a httparse::Request<'_, '_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

/// The file a request path names under `root`, or `None` for a path that
/// would leave it (`..`, absolute components after the root) or is not
/// valid. Query strings are ignored.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let rel = path.strip_prefix('/')?;
    let mut out = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-http-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        dir
    }

    fn drain(conn: &mut HttpConnection) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let chunk = conn.output().unwrap().to_vec();
            if chunk.is_empty() {
                return out;
            }
            conn.wrote(chunk.len());
            out.extend_from_slice(&chunk);
        }
    }

    #[test]
    fn serves_a_file_with_keep_alive_and_pipelining() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let root = root_with("f.bin", &body);
        let mut conn = HttpConnection::new(&root);
        conn.on_input(b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\nHEAD /f.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\n\r\n");
        let out = drain(&mut conn);
        let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(std::str::from_utf8(&out[..head_end]).unwrap().contains("Content-Length: 200000\r\n"));
        assert_eq!(&out[head_end..head_end + body.len()], &body[..]);
        let rest = std::str::from_utf8(&out[head_end + body.len()..]).unwrap();
        assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "HEAD answered second: {rest}");
        assert!(rest.contains("HTTP/1.1 404 Not Found"));
        assert!(!conn.finished(), "keep-alive connection stays open");
        assert_eq!(conn.requests, 3);
    }

    #[test]
    fn connection_close_and_errors_end_the_connection() {
        let root = root_with("a", b"abc");
        let mut conn = HttpConnection::new(&root);
        conn.on_input(b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /a HTTP/1.1\r\n\r\n");
        let out = drain(&mut conn);
        assert_eq!(out.windows(8).filter(|w| w == b"HTTP/1.1").count(), 1, "nothing after close");
        assert!(conn.finished());

        let mut conn = HttpConnection::new(&root);
        conn.on_input(b"GET /../etc/passwd HTTP/1.1\r\n\r\n");
        assert!(String::from_utf8(drain(&mut conn)).unwrap().starts_with("HTTP/1.1 404"));
        let mut conn = HttpConnection::new(&root);
        conn.on_input(b"\x00\x01garbage\r\n\r\n");
        assert!(String::from_utf8(drain(&mut conn)).unwrap().starts_with("HTTP/1.1 400"));
        assert!(conn.finished());
        let mut conn = HttpConnection::new(&root);
        conn.on_input(&vec![b'a'; MAX_HEAD + 10]);
        assert!(String::from_utf8(drain(&mut conn)).unwrap().starts_with("HTTP/1.1 431"));
        let mut conn = HttpConnection::new(&root);
        conn.on_input(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert!(String::from_utf8(drain(&mut conn)).unwrap().starts_with("HTTP/1.1 405"));
        assert!(conn.finished());
    }

    #[test]
    fn http10_closes_unless_keep_alive_is_asked() {
        let root = root_with("b", b"x");
        let mut conn = HttpConnection::new(&root);
        conn.on_input(b"GET /b HTTP/1.0\r\n\r\n");
        drain(&mut conn);
        assert!(conn.finished());
        let mut conn = HttpConnection::new(&root);
        conn.on_input(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        drain(&mut conn);
        assert!(!conn.finished());
    }

    #[test]
    fn paths_cannot_leave_the_root() {
        let root = Path::new("/srv");
        assert_eq!(resolve(root, "/a/b?x=1"), Some(PathBuf::from("/srv/a/b")));
        assert_eq!(resolve(root, "/a/../../x"), None);
        assert_eq!(resolve(root, "relative"), None);
    }
}
