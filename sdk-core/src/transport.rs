//! How batches leave the device: the `HttpTransport` trait, with a built-in blocking
//! client (ureq over rustls) and room for the host's own HTTP stack through uniffi.
use std::{collections::HashMap, io::Read, time::Duration};

use crate::error::{AssentError, Result};

/// One upload request: always a POST.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpRequest {
    /// Full URL, such as `https://collector.example.com/v1/batch`.
    pub url: String,
    /// Header names and values (`Authorization`, `Content-Type`, `Content-Encoding`...).
    pub headers: HashMap<String, String>,
    /// The body, gzip-compressed when `Content-Encoding: gzip` is set.
    pub body: Vec<u8>,
}

/// The collector's answer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `Retry-After` header, when present.
    pub retry_after: Option<String>,
    /// The response body.
    pub body: Vec<u8>,
}

/// Sends upload requests. Implement it in Kotlin, Swift or Python to route uploads
/// through the platform's own HTTP stack; return an `AssentError.Network` for a request
/// that did not get an HTTP answer.
#[uniffi::export(with_foreign)]
pub trait HttpTransport: Send + Sync {
    /// Sends one request and waits for the answer. Called from the SDK's uploader thread
    /// (or the thread calling `flush`), never from the thread that tracks.
    fn post(&self, request: HttpRequest) -> Result<HttpResponse>;
}

/// The built-in transport: blocking HTTP/1.1 with rustls, with timeouts.
#[derive(Debug)]
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl Default for UreqTransport {
    fn default() -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("assent-core/", env!("CARGO_PKG_VERSION")))
            .build();
        UreqTransport { agent }
    }
}

/// The most of a response body we read: answers are small JSON documents.
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

impl HttpTransport for UreqTransport {
    fn post(&self, request: HttpRequest) -> Result<HttpResponse> {
        let mut call = self.agent.post(&request.url);
        for (name, value) in &request.headers {
            call = call.set(name, value);
        }
        let response = match call.send_bytes(&request.body) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                // The transport error's text can include the URL, never identifiers.
                return Err(AssentError::Network {
                    reason: t.kind().to_string(),
                });
            }
        };
        let status = response.status();
        let retry_after = response.header("retry-after").map(str::to_owned);
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut body)
            .map_err(|e| AssentError::Network {
                reason: e.kind().to_string(),
            })?;
        Ok(HttpResponse {
            status,
            retry_after,
            body,
        })
    }
}
