//! The HTTP/1.1 transport to the node: `POST` a JSON body to one `http://` URL over a kept-alive
//! connection (hyper's `client::conn::http1`), reconnecting when the connection fails.
//!
//! One idle connection is kept. A request takes it (or opens a new one when there is none or
//! it was closed) and puts it back only after reading a whole answer; a request that fails or
//! is abandoned (timeout) drops its connection, which aborts hyper's connection task, so a
//! half-read answer can never be mistaken for the next one. Concurrent requests each get their
//! own connection for the moment. No TLS: `https://` URLs are refused at parse time.

use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::error::EthError;

/// Largest answer read (a wide `eth_getLogs` can be big, but not this big).
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Where requests go, parsed from an `http://host[:port][/path]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    path: String,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Self, EthError> {
        let bad = |reason: &str| EthError::Config(format!("RPC URL {url:?}: {reason}"));
        let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(EthError::HttpsNotSupported {
                    url: url.to_string(),
                })
            }
            Some(other) => return Err(bad(&format!("scheme {other:?} is not http"))),
            None => return Err(bad("no scheme (expected http://host:port)")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let host = authority.host();
        // An IPv6 literal comes bracketed; the socket address wants it bare.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return Err(bad("no host"));
        }
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        Ok(Self {
            host: bare.to_string(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_string(),
            path,
        })
    }
}

/// Why an HTTP exchange failed.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// No TCP connection or HTTP handshake.
    Connect(String),
    /// The connection broke while sending or reading (the request may have arrived).
    Broken(String),
    /// The answer is larger than [`MAX_RESPONSE_BYTES`].
    TooLarge,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "cannot connect: {e}"),
            HttpError::Broken(e) => write!(f, "connection failed: {e}"),
            HttpError::TooLarge => write!(f, "answer larger than {MAX_RESPONSE_BYTES} bytes"),
        }
    }
}

/// A whole HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// One HTTP/1.1 connection and the task that drives it (aborted when dropped).
#[derive(Debug)]
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// An HTTP client for one endpoint.
#[derive(Debug)]
pub(crate) struct HttpClient {
    endpoint: Endpoint,
    idle: Mutex<Option<Conn>>,
}

impl HttpClient {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            idle: Mutex::new(None),
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .filter(|c| !c.sender.is_closed())
    }

    fn put_idle(&self, conn: Conn) {
        let mut slot = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(conn);
        }
    }

    async fn connect(&self) -> Result<Conn, HttpError> {
        let e = &self.endpoint;
        let stream = TcpStream::connect((e.host.as_str(), e.port))
            .await
            .map_err(|err| HttpError::Connect(format!("{}:{}: {err}", e.host, e.port)))?;
        // Requests are small and answered at once: do not wait to fill packets.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| HttpError::Connect(err.to_string()))?;
        let driver = tokio::spawn(async move {
            // Ends when the server closes or the connection fails; the sender sees either.
            let _ = connection.await;
        });
        Ok(Conn { sender, driver })
    }

    /// POSTs `body` as JSON and reads the whole answer.
    pub(crate) async fn post_json(&self, body: Vec<u8>) -> Result<Answer, HttpError> {
        // A kept connection the server has closed meanwhile fails `ready` before anything is
        // written, so it is safe to replace it with a new one.
        let kept = match self.take_idle() {
            Some(mut conn) => conn.sender.ready().await.is_ok().then_some(conn),
            None => None,
        };
        let mut conn = match kept {
            Some(conn) => conn,
            None => {
                let mut conn = self.connect().await?;
                conn.sender
                    .ready()
                    .await
                    .map_err(|e| HttpError::Broken(e.to_string()))?;
                conn
            }
        };
        let request = Request::post(self.endpoint.path.as_str())
            .header(HOST, self.endpoint.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::Broken(format!("building the request: {e}")))?;
        let response = conn
            .sender
            .send_request(request)
            .await
            .map_err(|e| HttpError::Broken(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HttpError::TooLarge
                } else {
                    HttpError::Broken(e.to_string())
                }
            })?
            .to_bytes();
        self.put_idle(conn);
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn urls_are_parsed_and_https_is_refused_with_a_clear_error() {
        let e = Endpoint::parse("http://127.0.0.1:8545").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 8545, "/")
        );
        assert_eq!(e.authority, "127.0.0.1:8545");
        let e = Endpoint::parse("http://localhost/rpc/v1?key=x").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("localhost", 80, "/rpc/v1?key=x")
        );
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));

        let err = Endpoint::parse("https://node.example:8545").unwrap_err();
        assert!(matches!(err, EthError::HttpsNotSupported { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("https RPC URLs are not supported yet")
                && msg.contains("TLS-terminating proxy"),
            "{msg}"
        );
        for bad in [
            "ws://127.0.0.1:8546",
            "127.0.0.1:8545",
            "http://u:p@host:1",
            "not a url",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(matches!(err, EthError::Config(_)), "{bad}: {err:?}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    /// A loopback server that answers one request per connection and then closes it, counting
    /// connections: the client must notice the closed connection and open a new one.
    async fn one_shot_server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    // Read until the end of the headers and the 2-byte body.
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"{}") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                    }
                    let body = format!("{{\"conn\":{n}}}");
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn a_closed_connection_is_replaced() {
        let (url, accepted) = one_shot_server().await;
        let client = HttpClient::new(Endpoint::parse(&url).unwrap());
        for n in 1..=3usize {
            let answer = client.post_json(b"{}".to_vec()).await.unwrap();
            assert_eq!(answer.status, 200);
            assert_eq!(&answer.body[..], format!("{{\"conn\":{n}}}").as_bytes());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = HttpClient::new(Endpoint::parse(&url).unwrap());
        let err = client.post_json(b"{}".to_vec()).await.unwrap_err();
        assert!(matches!(err, HttpError::Connect(_)), "{err}");
    }
}
