//! What a save asks of other services: the live checks of an AI endpoint and a classifier, and
//! Cloudflare's API for "Save to Cloudflare". Each is bounded in time, and its failure is a
//! sentence for the page that never carries a secret (no key, no token, no value).

use std::time::Duration;

use futures_util::future::{select, Either};
use serde::Deserialize;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

/// How long a live check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Cloudflare's API may take to set a secret (it redeploys the Worker's settings).
const CLOUDFLARE_TIMEOUT: Duration = Duration::from_secs(15);

/// Cloudflare's API.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

/// The Worker's script name on the account: `[env.production] name` in wrangler.toml (a test
/// keeps them equal), whose secrets "Save to Cloudflare" sets.
pub const SCRIPT_NAME: &str = "durable-chat";

/// A response's status and up to 2 KB of its body, or why there was none.
async fn send(
    url: &str,
    method: Method,
    bearer: Option<&str>,
    body: Option<String>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let headers = Headers::new();
    let _ = headers.set("accept", "application/json");
    if let Some(token) = bearer {
        let _ = headers.set("authorization", &format!("Bearer {token}"));
    }
    if body.is_some() {
        let _ = headers.set("content-type", "application/json");
    }
    let controller = AbortController::default();
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers)
        .with_body(body.map(Into::into));
    let request =
        Request::new_with_init(url, &init).map_err(|_| "The URL is not usable.".to_owned())?;
    let signal = controller.signal();
    let work = async {
        let mut response = Fetch::Request(request)
            .send_with_signal(&signal)
            .await
            .map_err(|e| format!("could not be reached ({e})"))?;
        let text = response.text().await.unwrap_or_default();
        Ok::<_, String>((response.status_code(), text.chars().take(2048).collect()))
    };
    let outcome = match select(Box::pin(work), Delay::from(timeout)).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(_) => Err(format!("did not answer within {} s", timeout.as_secs())),
    };
    controller.abort();
    outcome
}

/// `GET {base}/models` with the key, as OpenAI-compatible servers answer it: `Ok` with a line
/// for the page, or why not.
pub async fn check_ai(base_url: &str, key: Option<&str>) -> Result<String, String> {
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    match send(&url, Method::Get, key, None, CHECK_TIMEOUT).await {
        Ok((status, _)) if (200..300).contains(&status) => {
            Ok(format!("GET {url} answered {status}."))
        }
        Ok((status @ (401 | 403), _)) => Err(format!("GET {url} refused the API key ({status}).")),
        Ok((status, _)) => Err(format!("GET {url} answered {status}.")),
        Err(why) => Err(format!("GET {url} {why}.")),
    }
}

/// `GET {base}/health` of the classifier server (the root or its `/v1`, as the Worker's
/// classifier reads `CLASSIFIER_URL`).
pub async fn check_classifier(url: &str) -> Result<String, String> {
    let base = url.trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base);
    let url = format!("{base}/health");
    match send(&url, Method::Get, None, None, CHECK_TIMEOUT).await {
        Ok((status, _)) if (200..300).contains(&status) => {
            Ok(format!("GET {url} answered {status}."))
        }
        Ok((status, _)) => Err(format!("GET {url} answered {status}.")),
        Err(why) => Err(format!("GET {url} {why}.")),
    }
}

/// Where Cloudflare's API is: [`CLOUDFLARE_API`], or the dev-only `CLOUDFLARE_API_BASE` (the
/// tests' fake) when it is a loopback URL and the request itself is to localhost, so a deployed
/// Worker never sends a token elsewhere.
pub fn cloudflare_base(configured: Option<&str>, loopback: bool) -> String {
    match configured {
        Some(base) if loopback && is_loopback_url(base) => base.trim_end_matches('/').to_owned(),
        _ => CLOUDFLARE_API.to_owned(),
    }
}

fn is_loopback_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && matches!(
                url.host_str(),
                Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
            )
    })
}

/// Cloudflare's answer envelope.
#[derive(Deserialize, Default)]
struct CloudflareAnswer {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<CloudflareError>,
}

#[derive(Deserialize)]
struct CloudflareError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

/// What Cloudflare's API said, as a line for the page: `Ok` when the secret is set.
pub fn read_cloudflare_answer(status: u16, body: &str) -> Result<String, String> {
    let answer: CloudflareAnswer = serde_json::from_str(body).unwrap_or_default();
    if (200..300).contains(&status) && answer.success {
        return Ok("Set as a Worker secret.".to_owned());
    }
    let errors: Vec<String> = answer
        .errors
        .iter()
        .map(|e| {
            let message: String = e.message.chars().take(200).collect();
            format!("{message} ({})", e.code)
        })
        .collect();
    Err(if errors.is_empty() {
        format!("Cloudflare's API answered {status}.")
    } else {
        format!("Cloudflare's API answered {status}: {}", errors.join("; "))
    })
}

/// Sets `name` to `value` as a secret of the Worker through Cloudflare's API
/// (`PUT /accounts/{account}/workers/scripts/{script}/secrets`).
pub async fn put_worker_secret(
    base: &str,
    account: &str,
    token: &str,
    name: &str,
    value: &str,
) -> Result<String, String> {
    let url = format!("{base}/accounts/{account}/workers/scripts/{SCRIPT_NAME}/secrets");
    let body = serde_json::json!({ "name": name, "text": value, "type": "secret_text" });
    match send(
        &url,
        Method::Put,
        Some(token),
        Some(body.to_string()),
        CLOUDFLARE_TIMEOUT,
    )
    .await
    {
        Ok((status, text)) => read_cloudflare_answer(status, &text),
        Err(why) => Err(format!("Cloudflare's API {why}.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_base_is_cloudflares_unless_a_loopback_fake_is_set_for_a_localhost_request() {
        let fake = Some("http://127.0.0.1:9999/client/v4/");
        assert_eq!(
            cloudflare_base(fake, true),
            "http://127.0.0.1:9999/client/v4"
        );
        assert_eq!(
            cloudflare_base(fake, false),
            CLOUDFLARE_API,
            "not for another host"
        );
        assert_eq!(
            cloudflare_base(Some("https://evil.example/client/v4"), true),
            CLOUDFLARE_API,
            "never a non-loopback address"
        );
        assert_eq!(
            cloudflare_base(Some("http://127.0.0.1.evil.example/"), true),
            CLOUDFLARE_API
        );
        assert_eq!(cloudflare_base(None, true), CLOUDFLARE_API);
    }

    #[test]
    fn cloudflares_answer_is_success_only_with_success_true_and_its_errors_are_reported() {
        assert!(read_cloudflare_answer(200, r#"{"success":true,"errors":[],"result":{}}"#).is_ok());
        assert!(read_cloudflare_answer(200, r#"{"success":false,"errors":[]}"#).is_err());
        let refused = read_cloudflare_answer(
            403,
            r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#,
        )
        .expect_err("403");
        assert!(
            refused.contains("Authentication error (10000)"),
            "{refused}"
        );
        assert!(refused.contains("403"), "{refused}");
        assert_eq!(
            read_cloudflare_answer(502, "<html>bad gateway</html>"),
            Err("Cloudflare's API answered 502.".into())
        );
    }

    #[test]
    fn the_script_name_is_the_production_workers_name_in_wrangler_toml() {
        let toml = include_str!("../../../wrangler.toml");
        let production = toml
            .split("[env.production]")
            .nth(1)
            .expect("wrangler.toml has [env.production]");
        let name = production
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = "))
            .map(|v| v.trim_matches('"'));
        assert_eq!(name, Some(SCRIPT_NAME));
    }
}
