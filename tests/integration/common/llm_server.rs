//! A local HTTP server that speaks the chat completions protocol, for the
//! research tests: it answers from a script (status and body per request,
//! or hangs) and records every request it gets.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with a chat completion whose content is this.
    Content(String),
    /// This status with this body.
    Status(u16, String),
    /// This status, body and header (`retry-after: 7`, say).
    StatusWithHeader(u16, String, &'static str, String),
    /// 200 with a completion the model stopped at its length limit.
    CutOff(String),
    /// Never answer.
    Hang,
}

/// A request the server got.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: serde_json::Value,
}

#[derive(Clone)]
pub struct LlmServer {
    pub base_url: String,
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// Used once the script runs out.
    fallback: Arc<Mutex<Reply>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl LlmServer {
    /// Starts on 127.0.0.1 in the current runtime; base URL ends in `/v1`.
    pub async fn start(script: Vec<Reply>, fallback: Reply) -> LlmServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = LlmServer {
            base_url: format!("http://{addr}/v1"),
            script: Arc::new(Mutex::new(script.into())),
            fallback: Arc::new(Mutex::new(fallback)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { s.handle(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn set_fallback(&self, reply: Reply) {
        *self.fallback.lock().unwrap() = reply;
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        self.seen.lock().unwrap().push(Seen {
            method,
            path,
            authorization,
            body,
        });
        let reply = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.fallback.lock().unwrap().clone());
        let completion = |c: &str, finish: &str| {
            serde_json::json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": "test-model",
                "choices": [{"index": 0, "finish_reason": finish,
                             "message": {"role": "assistant", "content": c}}],
            })
            .to_string()
        };
        let mut header = None;
        let (status, body) = match reply {
            Reply::Content(c) => (200, completion(&c, "stop")),
            Reply::CutOff(c) => (200, completion(&c, "length")),
            Reply::Status(code, body) => (code, body),
            Reply::StatusWithHeader(code, body, name, value) => {
                header = Some((name, value));
                (code, body)
            }
            Reply::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
        };
        let mut response = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some((name, value)) = header {
            response = response.header(name, value);
        }
        Ok(response.body(Full::new(Bytes::from(body))).unwrap())
    }
}
