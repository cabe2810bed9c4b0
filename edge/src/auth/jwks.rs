//! ID token signatures: the provider's published keys (its JWKS), checked with the runtime's
//! WebCrypto, so no RSA code is compiled into the Worker.
//!
//! Keys are cached per isolate for an hour; a token signed with a key id the cache does not
//! know refetches the set (providers rotate keys) at most once a minute.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Fetch, Url};

use super::id_token::Invalid;

/// How long a fetched key set is used.
const CACHE_MS: i64 = 60 * 60 * 1000;
/// A key set is refetched for an unknown key id at most this often.
const REFETCH_MS: i64 = 60 * 1000;

/// One published key (RSA; other kinds are skipped).
#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

thread_local! {
    /// Key sets by URL, with when they were fetched.
    static CACHE: RefCell<HashMap<String, (i64, Vec<Jwk>)>> = RefCell::new(HashMap::new());
}

/// Checks that `token` is signed (RS256, the algorithm Google and Apple use) by a key in the
/// set published at `jwks_url`.
pub async fn verify_signature(token: &str, jwks_url: &str, now_ms: i64) -> Result<(), Invalid> {
    let mut parts = token.split('.');
    let (Some(raw_header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid("not a JWS compact token"));
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(raw_header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Invalid("unreadable token header"))?;
    if header.alg != "RS256" {
        return Err(Invalid("the token is not signed with RS256"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Invalid("unreadable token signature"))?;
    let key = match cached_key(jwks_url, header.kid.as_deref(), now_ms, CACHE_MS) {
        Some(key) => key,
        None => {
            // Unknown to the cache: the provider may have rotated its keys.
            if !refetch_allowed(jwks_url, now_ms) {
                return Err(Invalid("the token's signing key is not published"));
            }
            fetch_keys(jwks_url, now_ms).await?;
            cached_key(jwks_url, header.kid.as_deref(), now_ms, CACHE_MS)
                .ok_or(Invalid("the token's signing key is not published"))?
        }
    };
    let signed = format!("{raw_header}.{payload}");
    if web_crypto_verify(&key, &signature, signed.as_bytes())
        .await
        .map_err(|_| Invalid("the runtime could not check the signature"))?
    {
        Ok(())
    } else {
        Err(Invalid("the token's signature does not verify"))
    }
}

fn cached_key(url: &str, kid: Option<&str>, now_ms: i64, max_age: i64) -> Option<Jwk> {
    CACHE.with(|cache| {
        let cache = cache.borrow();
        let (fetched, keys) = cache.get(url)?;
        if now_ms - fetched > max_age {
            return None;
        }
        keys.iter()
            .find(|k| k.kty == "RSA" && (kid.is_none() || k.kid.as_deref() == kid))
            .cloned()
    })
}

fn refetch_allowed(url: &str, now_ms: i64) -> bool {
    CACHE.with(|cache| {
        cache
            .borrow()
            .get(url)
            .is_none_or(|(fetched, _)| now_ms - fetched > REFETCH_MS)
    })
}

async fn fetch_keys(url: &str, now_ms: i64) -> Result<(), Invalid> {
    let url = Url::parse(url).map_err(|_| Invalid("bad key set URL"))?;
    let mut response = Fetch::Url(url.clone())
        .send()
        .await
        .map_err(|_| Invalid("the provider's key set could not be fetched"))?;
    if response.status_code() != 200 {
        return Err(Invalid("the provider's key set could not be fetched"));
    }
    let set: KeySet = response
        .json()
        .await
        .map_err(|_| Invalid("the provider's key set is unreadable"))?;
    remember(url.as_str(), now_ms, set.keys);
    Ok(())
}

fn remember(url: &str, now_ms: i64, keys: Vec<Jwk>) {
    CACHE.with(|cache| {
        cache.borrow_mut().insert(url.to_owned(), (now_ms, keys));
    });
}

/// RSASSA-PKCS1-v1_5 with SHA-256 through `crypto.subtle`.
async fn web_crypto_verify(key: &Jwk, signature: &[u8], data: &[u8]) -> Result<bool, JsValue> {
    let set = |object: &js_sys::Object, name: &str, value: &JsValue| {
        js_sys::Reflect::set(object, &name.into(), value)
    };
    let jwk = js_sys::Object::new();
    set(&jwk, "kty", &"RSA".into())?;
    set(&jwk, "n", &key.n.clone().unwrap_or_default().into())?;
    set(&jwk, "e", &key.e.clone().unwrap_or_default().into())?;
    set(&jwk, "alg", &"RS256".into())?;
    set(&jwk, "ext", &true.into())?;
    let algorithm = js_sys::Object::new();
    set(&algorithm, "name", &"RSASSA-PKCS1-v1_5".into())?;
    let hash = js_sys::Object::new();
    set(&hash, "name", &"SHA-256".into())?;
    set(&algorithm, "hash", &hash)?;

    // Unchecked: the runtime's classes need not be globals for an `instanceof` check.
    let crypto: web_sys::Crypto =
        js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?.unchecked_into();
    let subtle = crypto.subtle();
    let usages = js_sys::Array::of1(&"verify".into());
    let key: web_sys::CryptoKey =
        JsFuture::from(subtle.import_key_with_object("jwk", &jwk, &algorithm, false, &usages)?)
            .await?
            .unchecked_into();
    let verified = JsFuture::from(subtle.verify_with_str_and_u8_array_and_u8_array(
        "RSASSA-PKCS1-v1_5",
        &key,
        signature,
        data,
    )?)
    .await?;
    Ok(verified.as_bool().unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa(kid: &str) -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: Some(kid.into()),
            n: Some("n".into()),
            e: Some("AQAB".into()),
        }
    }

    #[test]
    fn a_cached_key_is_found_by_its_id_until_the_set_is_an_hour_old() {
        let url = "https://idp.test/keys-a";
        remember(url, 1_000, vec![rsa("k1"), rsa("k2")]);
        let found = |kid, now| cached_key(url, Some(kid), now, CACHE_MS).and_then(|k| k.kid);
        assert_eq!(found("k2", 2_000).as_deref(), Some("k2"));
        assert_eq!(found("k3", 2_000), None, "an unknown key id is not guessed");
        assert_eq!(found("k1", 1_000 + CACHE_MS + 1), None, "too old");
        assert!(cached_key("https://idp.test/other", Some("k1"), 2_000, CACHE_MS).is_none());
    }

    #[test]
    fn a_key_set_is_refetched_for_an_unknown_key_at_most_once_a_minute() {
        let url = "https://idp.test/keys-b";
        assert!(refetch_allowed(url, 0), "never fetched");
        remember(url, 10_000, vec![rsa("k1")]);
        assert!(!refetch_allowed(url, 10_000 + REFETCH_MS));
        assert!(refetch_allowed(url, 10_000 + REFETCH_MS + 1));
    }
}
