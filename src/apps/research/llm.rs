//! The model behind `llm_call`: any OpenAI-compatible chat completions
//! endpoint over HTTP, or, with none configured, a built-in offline model
//! that says so. The API key lives only here: it is sent as a bearer token
//! and never enters an activity's input or result, an error, a log line or
//! the screen.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `LLM_BASE_URL` when unset but a key is given.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// `LLM_MODEL` when unset (the tutorial's).
pub const DEFAULT_MODEL: &str = "gpt-4o";
/// What the offline model calls itself, on screen and in the report.
pub const OFFLINE_LABEL: &str = "holdfast offline model (no LLM configured)";

/// An API key. `Debug` shows `***`; there is no `Display`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Where the model is.
#[derive(Clone, Debug)]
pub struct LlmConfig {
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub model: String,
    /// How long one request may take (inside the activity's 30 s).
    pub timeout: Duration,
    /// Credentials that were written into `LLM_BASE_URL`
    /// (`http://user:KEY@host/v1`): taken out of the URL, which is shown and
    /// stored, and sent as HTTP basic auth instead.
    basic_auth: Option<(String, Option<ApiKey>)>,
    /// `LLM_TIMEOUT` as written, checked by [`Llm::http`].
    timeout_setting: Option<String>,
}

impl LlmConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            api_key: None,
            model: model.into(),
            timeout: DEFAULT_TIMEOUT,
            basic_auth: None,
            timeout_setting: None,
        }
    }

    /// Checks the base URL (an `http` or `https` URL, or it is refused
    /// before anything runs, naming `LLM_BASE_URL`) and takes any
    /// credentials out of it.
    fn checked(mut self) -> Result<LlmConfig, LlmError> {
        let refuse = |why: String| LlmError {
            error_type: "LlmConfigError",
            message: format!("LLM_BASE_URL {why}"),
            retryable: false,
            retry_after: None,
        };
        let mut url = reqwest::Url::parse(self.base_url.trim()).map_err(|e| {
            // The text may hold a credential: name only what is wrong.
            refuse(format!(
                "is not a URL ({e}); expected e.g. http://localhost:11434/v1"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(format!(
                "must be an http or https URL, not {}:",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("has no host".into()));
        }
        if let Some(t) = self.timeout_setting.take() {
            let secs: f64 = t.trim().parse().map_err(|_| LlmError {
                error_type: "LlmConfigError",
                message: format!("LLM_TIMEOUT {t:?} is not a number of seconds"),
                retryable: false,
                retry_after: None,
            })?;
            if !(1.0..=3600.0).contains(&secs) {
                return Err(LlmError {
                    error_type: "LlmConfigError",
                    message: format!("LLM_TIMEOUT {t} is out of range: 1 to 3600 seconds"),
                    retryable: false,
                    retry_after: None,
                });
            }
            self.timeout = Duration::from_secs_f64(secs);
        }
        if !url.username().is_empty() || url.password().is_some() {
            let user = url.username().to_string();
            let password = url.password().map(ApiKey::new);
            self.basic_auth = Some((user, password));
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        self.base_url = url.as_str().trim_end_matches('/').to_string();
        Ok(self)
    }

    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    /// From `LLM_BASE_URL`, `LLM_API_KEY` and `LLM_MODEL`; `None` (the
    /// offline model) when neither a base URL nor a key is set. A base URL
    /// alone is a local server that needs no key (Ollama, llama.cpp).
    pub fn from_env() -> Option<LlmConfig> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let base = get("LLM_BASE_URL");
        let key = get("LLM_API_KEY");
        if base.is_none() && key.is_none() {
            return None;
        }
        let mut c = LlmConfig::new(
            base.unwrap_or_else(|| DEFAULT_BASE_URL.into()),
            get("LLM_MODEL").unwrap_or_else(|| DEFAULT_MODEL.into()),
        );
        c.api_key = key.map(ApiKey::new);
        c.timeout_setting = get("LLM_TIMEOUT");
        Some(c)
    }

    fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }
}

/// A failed call: whether a retry may help, and what to tell a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmError {
    pub error_type: &'static str,
    pub message: String,
    pub retryable: bool,
    /// How long the server asked us to wait (`Retry-After`, `retry-after-ms`).
    pub retry_after: Option<Duration>,
}

/// `LLM_TIMEOUT` when unset: generous enough for a local model on a laptop.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the server asks to wait: `retry-after-ms` (milliseconds, as
/// OpenAI sends it) or `Retry-After` in seconds. A date is not honoured.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let ms = get("retry-after-ms").or_else(|| get("retry-after").map(|s| s * 1000.0))?;
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_millis(ms.min(3_600_000.0) as u64))
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for LlmError {}

/// What the model said, and which model said it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Completion {
    pub content: String,
    /// `gpt-4o via https://api.openai.com/v1`, or [`OFFLINE_LABEL`].
    pub model: String,
    pub offline: bool,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [ChatMessage<'a>; 1],
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
}

// Lenient: OpenAI-compatible servers differ in everything but this.
#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ResponseMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
}

/// The model `llm_call` uses.
#[derive(Clone, Debug)]
pub enum Llm {
    Offline,
    Http {
        config: LlmConfig,
        client: reqwest::Client,
    },
}

impl Llm {
    /// The endpoint from the environment, or the offline model.
    pub fn from_env() -> Result<Llm, LlmError> {
        match LlmConfig::from_env() {
            Some(c) => Llm::http(c),
            None => Ok(Llm::Offline),
        }
    }

    pub fn http(config: LlmConfig) -> Result<Llm, LlmError> {
        let config = config.checked()?;
        // reqwest is built with rustls and no provider of its own: ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| LlmError {
                error_type: "LlmConfigError",
                message: format!("cannot set up the HTTP client: {e}"),
                retryable: false,
                retry_after: None,
            })?;
        Ok(Llm::Http { config, client })
    }

    /// What to call the model on screen and in the report.
    pub fn label(&self) -> String {
        match self {
            Llm::Offline => OFFLINE_LABEL.to_string(),
            Llm::Http { config, .. } => format!("{} via {}", config.model, config.base_url),
        }
    }

    /// How long one call may take (`LLM_TIMEOUT`); the activity's
    /// start-to-close timeout is set from it.
    pub fn timeout(&self) -> Duration {
        match self {
            Llm::Offline => Duration::from_secs(10),
            Llm::Http { config, .. } => config.timeout,
        }
    }

    pub fn is_offline(&self) -> bool {
        matches!(self, Llm::Offline)
    }

    /// One chat completion for `prompt`.
    pub async fn complete(&self, prompt: &str) -> Result<Completion, LlmError> {
        match self {
            Llm::Offline => Ok(Completion {
                content: offline_answer(prompt),
                model: self.label(),
                offline: true,
            }),
            Llm::Http { config, client } => {
                let content = http_complete(config, client, prompt).await?;
                Ok(Completion {
                    content,
                    model: self.label(),
                    offline: false,
                })
            }
        }
    }
}

async fn http_complete(
    config: &LlmConfig,
    client: &reqwest::Client,
    prompt: &str,
) -> Result<String, LlmError> {
    let endpoint = config.endpoint();
    let mut request = client.post(&endpoint).json(&ChatRequest {
        model: &config.model,
        messages: [ChatMessage {
            role: "user",
            content: prompt,
        }],
    });
    if let Some(key) = &config.api_key {
        request = request.bearer_auth(&key.0);
    } else if let Some((user, password)) = &config.basic_auth {
        request = request.basic_auth(user, password.as_ref().map(|p| &p.0));
    }
    let secrets: Vec<&str> = config
        .api_key
        .iter()
        .chain(config.basic_auth.iter().filter_map(|(_, p)| p.as_ref()))
        .map(|k| k.0.as_str())
        .filter(|k| !k.is_empty())
        .collect();
    let redact = |text: &str| {
        secrets
            .iter()
            .fold(text.to_string(), |t, k| t.replace(k, "***"))
    };
    let response = request.send().await.map_err(|e| {
        let (error_type, what) = if e.is_timeout() {
            (
                "LlmTimeoutError",
                format!("no answer within {:?}", config.timeout),
            )
        } else if e.is_connect() {
            ("LlmUnreachableError", "cannot connect".to_string())
        } else {
            ("LlmTransportError", e.without_url().to_string())
        };
        LlmError {
            error_type,
            message: redact(&format!("{what} ({endpoint})")),
            retryable: true,
            retry_after: None,
        }
    })?;
    let status = response.status();
    let wait = retry_after(response.headers());
    let body = response.text().await.map_err(|e| LlmError {
        error_type: if e.is_timeout() {
            "LlmTimeoutError"
        } else {
            "LlmTransportError"
        },
        message: redact(&format!(
            "the answer was cut off: {} ({endpoint})",
            e.without_url()
        )),
        retryable: true,
        retry_after: None,
    })?;
    if !status.is_success() {
        let excerpt: String = redact(body.trim()).chars().take(200).collect();
        let code = status.as_u16();
        let (error_type, retryable, what) = match code {
            401 | 403 => (
                "LlmAuthError",
                false,
                "the endpoint refused the credentials (check LLM_API_KEY, or the user and password in LLM_BASE_URL)",
            ),
            429 => ("LlmRateLimitedError", true, "rate limited"),
            408 => ("LlmTimeoutError", true, "the endpoint gave up waiting"),
            409 => (
                "LlmServerError",
                true,
                "the endpoint was busy with a conflict",
            ),
            500..=599 => ("LlmServerError", true, "the endpoint failed"),
            404 => (
                "LlmBadRequestError",
                false,
                "no such endpoint or model (check LLM_BASE_URL and LLM_MODEL)",
            ),
            _ => (
                "LlmBadRequestError",
                false,
                "the endpoint refused the request",
            ),
        };
        return Err(LlmError {
            error_type,
            message: format!("{what}: HTTP {status} from {endpoint}: {excerpt}"),
            retryable,
            // Honoured where a server says when to come back.
            retry_after: if matches!(code, 429 | 503) {
                wait
            } else {
                None
            },
        });
    }
    let parsed: ChatResponse = serde_json::from_str(&body).map_err(|e| LlmError {
        error_type: "LlmBadResponseError",
        message: format!("the answer from {endpoint} is not a chat completion: {e}"),
        retryable: true,
        retry_after: None,
    })?;
    let choice = parsed.choices.into_iter().next();
    let cut_off = choice
        .as_ref()
        .is_some_and(|c| c.finish_reason.as_deref() == Some("length"));
    let content = choice
        .and_then(|c| c.message)
        .and_then(|m| m.content)
        .filter(|c| !c.trim().is_empty())
        // An empty answer was still paid for: asking again is not free, and
        // not what a failing endpoint deserves; the person decides.
        .ok_or_else(|| LlmError {
            error_type: "LlmEmptyAnswerError",
            message: format!("the model at {endpoint} answered with no text"),
            retryable: false,
            retry_after: None,
        })?;
    Ok(if cut_off {
        format!("{content}\n\n{CUT_OFF_NOTE}")
    } else {
        content
    })
}

/// Written under an answer the model stopped at its length limit, so the
/// report is never published as complete.
pub const CUT_OFF_NOTE: &str = "[The model's answer was cut off at its length limit (finish_reason \"length\"): this report is incomplete.]";

/// The offline model: a short, honest research outline built from the
/// prompt, so the story runs with no network. It is labelled as such.
pub fn offline_answer(prompt: &str) -> String {
    let (topic, extra) = match prompt.split_once("\n\nAdditional instructions:") {
        Some((t, e)) => (t.trim(), Some(e.trim())),
        None => (prompt.trim(), None),
    };
    let topic = if topic.is_empty() {
        "the question asked"
    } else {
        topic
    };
    let mut paragraphs = vec![
        format!(
            "This report was written by holdfast's built-in offline model, because no LLM endpoint is configured. Set LLM_API_KEY (and LLM_BASE_URL, LLM_MODEL for a server other than OpenAI's) to have a real model research: {topic}"
        ),
        format!(
            "Scope. The question is \"{topic}\". A useful answer separates what is well established from what is contested, names the sources a reader can check, and says what would change the conclusion."
        ),
        "Background. Start from the definitions and the history of the subject: who studies it, which methods they use, and which results are replicated. Summaries in review articles and textbooks are the quickest way in; primary sources settle disputes.".to_string(),
        "Findings. List the three to five strongest claims, each with the evidence behind it and its limits. Where studies disagree, say why: different populations, measures, time spans or incentives.".to_string(),
        "Open questions. Note what is unknown, what is being researched now, and which practical decisions do not have to wait for those answers.".to_string(),
    ];
    if let Some(extra) = extra {
        paragraphs.push(format!(
            "Revision. The reader asked for changes: {extra}. This draft was rewritten with that in mind."
        ));
    }
    paragraphs.join("\n\n")
}

#[cfg(test)]
mod url_tests {
    use super::*;

    /// A credential written into LLM_BASE_URL never reaches what is shown
    /// or stored (the label goes into history, the PDF and the e-mail); it
    /// is sent as basic auth instead.
    #[test]
    fn credentials_in_the_base_url_are_taken_out() {
        let llm = Llm::http(LlmConfig::new("http://ada:S3CRET@127.0.0.1:9/v1/", "m")).unwrap();
        let label = llm.label();
        assert_eq!(label, "m via http://127.0.0.1:9/v1");
        assert!(!format!("{llm:?}").contains("S3CRET"));
    }

    /// A malformed or non-HTTP base URL is refused before anything runs,
    /// naming the variable, without echoing what might be a credential.
    #[test]
    fn a_bad_base_url_is_refused_naming_the_variable() {
        for bad in ["not a url", "ftp://host/v1", "http://"] {
            let err = Llm::http(LlmConfig::new(bad, "m")).unwrap_err();
            assert!(err.message.starts_with("LLM_BASE_URL"), "{bad}: {err}");
            assert!(!err.retryable);
        }
        let err = Llm::http(LlmConfig::new("user:S3CRET@host", "m")).unwrap_err();
        assert!(!err.message.contains("S3CRET"), "{err}");
    }

    /// LLM_TIMEOUT sets how long a call may take; nonsense is refused,
    /// naming the variable.
    #[test]
    fn llm_timeout_is_read_and_checked() {
        let with = |t: &str| {
            let mut c = LlmConfig::new("http://127.0.0.1:9/v1", "m");
            c.timeout_setting = Some(t.into());
            Llm::http(c)
        };
        assert_eq!(with("300").unwrap().timeout(), Duration::from_secs(300));
        for bad in ["soon", "0", "99999"] {
            let err = with(bad).unwrap_err();
            assert!(err.message.starts_with("LLM_TIMEOUT"), "{bad}: {err}");
        }
        let default = Llm::http(LlmConfig::new("http://127.0.0.1:9/v1", "m")).unwrap();
        assert_eq!(default.timeout(), DEFAULT_TIMEOUT);
    }
}
