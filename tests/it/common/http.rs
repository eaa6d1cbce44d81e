//! A small HTTP/1.1 client for the tests' loopback servers (Orthanc's REST API, the reading
//! room's page, API and live stream): one request per connection, chunked bodies decoded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

// The header accessors serve the reading room's tests (feature `reading-room`, x86-64).
#[cfg_attr(
    not(all(feature = "reading-room", target_arch = "x86_64")),
    allow(dead_code)
)]
pub struct Response {
    pub status: u16,
    /// The status line and header lines, as sent.
    pub headers: String,
    pub body: Vec<u8>,
}

#[cfg_attr(
    not(all(feature = "reading-room", target_arch = "x86_64")),
    allow(dead_code)
)]
impl Response {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// The status line and headers, up to the blank line.
pub fn read_head(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            return Ok(head);
        }
        head += &line;
    }
}

/// Reads a body sent with `Transfer-Encoding: chunked`, calling `each` with every chunk until
/// it returns false or the body ends (a live stream: as the chunks arrive).
pub fn read_chunks(reader: &mut impl BufRead, mut each: impl FnMut(&[u8]) -> bool) {
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return;
        }
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return;
        };
        if n == 0 {
            return;
        }
        let mut chunk = vec![0; n + 2];
        if reader.read_exact(&mut chunk).is_err() || !each(&chunk[..n]) {
            return;
        }
    }
}

/// One request to `127.0.0.1:port` with `Host: host`; the whole response.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    s.write_all((head + "\r\n").as_bytes())?;
    s.write_all(body)?;
    let mut reader = BufReader::new(s);
    let head = read_head(&mut reader)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    if head.to_lowercase().contains("transfer-encoding: chunked") {
        read_chunks(&mut reader, |c| {
            body.extend_from_slice(c);
            true
        });
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers: head,
        body,
    })
}
