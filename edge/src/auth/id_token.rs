//! OpenID Connect ID token checks (Google, Apple).
//!
//! The token comes straight from the provider's token endpoint over TLS in the code exchange,
//! never through the browser. Its signature is checked against the provider's published keys
//! (`jwks.rs`), and what binds it to this app and this login is checked here: the issuer, the
//! audience (our client id), the expiry, and the `nonce` we put in the authorization request and
//! kept in the signed state cookie (replay protection).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// Clock skew allowed on `exp` and `iat`, seconds.
const LEEWAY_SECONDS: i64 = 120;

/// The claims we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    /// The person's stable id at the provider.
    pub subject: String,
    /// Their email, if shared.
    pub email: Option<String>,
    /// Whether the provider verified it.
    pub email_verified: bool,
    /// Their name, if the token carries one (Google does; Apple does not).
    pub name: Option<String>,
}

/// Why a token was refused (logged; the person sees `oauth_id_token_invalid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Apple sends booleans as the strings "true"/"false"; Google as booleans.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

#[derive(Deserialize)]
struct RawClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Flag>,
    #[serde(default)]
    name: Option<String>,
}

/// Checks an ID token against the expected issuers, client id and nonce at `now_seconds`.
pub fn verify(
    token: &str,
    issuers: &[&str],
    client_id: &str,
    nonce: &str,
    now_seconds: i64,
) -> Result<IdClaims, Invalid> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid("not a JWT"));
    };
    let json = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| Invalid("payload is not base64url"))?;
    let claims: RawClaims =
        serde_json::from_slice(&json).map_err(|_| Invalid("payload lacks the required claims"))?;
    if !issuers.contains(&claims.iss.as_str()) {
        return Err(Invalid("wrong issuer"));
    }
    let for_us = match &claims.aud {
        Audience::One(aud) => aud == client_id,
        Audience::Many(auds) => auds.iter().any(|a| a == client_id),
    };
    if !for_us {
        return Err(Invalid("wrong audience"));
    }
    if claims.exp + LEEWAY_SECONDS < now_seconds {
        return Err(Invalid("expired"));
    }
    if claims
        .iat
        .is_some_and(|iat| iat > now_seconds + LEEWAY_SECONDS)
    {
        return Err(Invalid("issued in the future"));
    }
    if claims.nonce.as_deref() != Some(nonce) {
        return Err(Invalid("nonce mismatch"));
    }
    if claims.sub.is_empty() {
        return Err(Invalid("empty subject"));
    }
    let email_verified = match claims.email_verified {
        Some(Flag::Bool(b)) => b,
        Some(Flag::Text(t)) => t == "true",
        None => false,
    };
    Ok(IdClaims {
        subject: claims.sub,
        email: claims.email.filter(|e| !e.is_empty()),
        email_verified,
        name: claims.name.filter(|n| !n.trim().is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        format!("{header}.{payload}.c2lnbmF0dXJl")
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://accounts.google.com",
            "sub": "1234",
            "aud": "client-1",
            "exp": 2_000,
            "iat": 1_000,
            "nonce": "n-1",
            "email": "ann@example.com",
            "email_verified": true,
            "name": "Ann",
        })
    }

    const ISSUERS: &[&str] = &["https://accounts.google.com", "accounts.google.com"];

    #[test]
    fn a_token_for_this_client_and_login_gives_its_claims() {
        let claims = verify(&token(good()), ISSUERS, "client-1", "n-1", 1_500).unwrap();
        assert_eq!(
            claims,
            IdClaims {
                subject: "1234".into(),
                email: Some("ann@example.com".into()),
                email_verified: true,
                name: Some("Ann".into()),
            }
        );
    }

    #[test]
    fn a_token_with_another_nonce_issuer_audience_or_an_old_expiry_is_refused() {
        let t = token(good());
        assert_eq!(
            verify(&t, ISSUERS, "client-1", "n-2", 1_500),
            Err(Invalid("nonce mismatch"))
        );
        assert_eq!(
            verify(&t, &["https://evil.example"], "client-1", "n-1", 1_500),
            Err(Invalid("wrong issuer"))
        );
        assert_eq!(
            verify(&t, ISSUERS, "client-2", "n-1", 1_500),
            Err(Invalid("wrong audience"))
        );
        assert_eq!(
            verify(&t, ISSUERS, "client-1", "n-1", 2_000 + LEEWAY_SECONDS + 1),
            Err(Invalid("expired"))
        );
        let mut no_nonce = good();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert_eq!(
            verify(&token(no_nonce), ISSUERS, "client-1", "n-1", 1_500),
            Err(Invalid("nonce mismatch"))
        );
        assert!(verify("a.b", ISSUERS, "client-1", "n-1", 1_500).is_err());
        assert!(verify("a.!!!.c", ISSUERS, "client-1", "n-1", 1_500).is_err());
    }

    #[test]
    fn apple_string_flags_and_audience_lists_are_understood() {
        let mut claims = good();
        claims["iss"] = "https://appleid.apple.com".into();
        claims["aud"] = serde_json::json!(["other", "client-1"]);
        claims["email_verified"] = "true".into();
        claims.as_object_mut().unwrap().remove("name");
        let parsed = verify(
            &token(claims.clone()),
            &["https://appleid.apple.com"],
            "client-1",
            "n-1",
            1_500,
        )
        .unwrap();
        assert!(parsed.email_verified);
        assert_eq!(parsed.name, None);
        claims["email_verified"] = "false".into();
        let parsed = verify(
            &token(claims),
            &["https://appleid.apple.com"],
            "client-1",
            "n-1",
            1_500,
        )
        .unwrap();
        assert!(!parsed.email_verified);
    }
}
