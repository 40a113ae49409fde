//! `admin`: one HTTP exchange with a member's admin port, the operator's only channel to the
//! ensemble.
//!
//! Contract: [`call`] connects to `ip:8080`, sends one HTTP/1.0 request (with the bearer token
//! when given, and a JSON body when given), reads the whole answer and returns its status code
//! and body; anything that keeps it from getting an answer within [`TIMEOUT`] is an `Err` with
//! the reason. A plain HTTP/1.0 exchange keeps the operator free of an HTTP client stack. The
//! membership calls can take a while (a promotion waits for its commit, a leadership transfer
//! for the new leader), hence a timeout longer than a status read needs.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::names;
use super::observe::AdminToken;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// An exchange with a member; the token and a JSON body are sent when given.
pub async fn call(
    ip: &str,
    method: &str,
    path: &str,
    token: Option<&AdminToken>,
    json: Option<&serde_json::Value>,
) -> Result<(u16, Vec<u8>), String> {
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: {ip}\r\nAccept: application/json\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {}\r\n", token.0));
    }
    let body = match json {
        Some(json) => serde_json::to_vec(json).map_err(|e| format!("body: {e}"))?,
        None => Vec::new(),
    };
    if json.is_some() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect((ip, names::ADMIN_PORT as u16))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        stream
            .write_all(&body)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(1 << 20)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_response(&response)
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {TIMEOUT:?}"))?
}

/// The status code and body of a whole HTTP response.
pub fn parse_response(response: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("response has no header end")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    Ok((code, response[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn parses_the_code_and_body_and_rejects_garbage() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"id\":2}";
        assert_eq!(parse_response(ok), Ok((200, b"{\"id\":2}".to_vec())));
        let refused = b"HTTP/1.1 409 Conflict\r\n\r\nalready a member";
        assert_eq!(parse_response(refused).map(|(c, _)| c), Ok(409));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
    }
}
