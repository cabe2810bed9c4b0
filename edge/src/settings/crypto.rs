//! How a stored setting is sealed: AES-256-GCM through the runtime's Web Crypto, under the key
//! in the Worker secret `SETTINGS_KEY` (never stored beside the data), with a fresh random
//! 96-bit nonce per value and the setting's name as the additional authenticated data, so a
//! ciphertext copied onto another setting's row does not open.
//!
//! The stored text is an envelope, `v1.<nonce>.<ciphertext and tag>` (base64url, no padding):
//! the version lets a later format (another cipher, a key id) sit beside this one.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The envelope's format.
const VERSION: &str = "v1";
/// AES-GCM's recommended nonce: 96 bits.
pub const NONCE_BYTES: usize = 12;
/// AES-256.
pub const KEY_BYTES: usize = 32;
/// The GCM tag (128 bits) at the end of every ciphertext.
const TAG_BYTES: usize = 16;

/// A sealed value as stored: its nonce and the ciphertext with the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The random nonce it was sealed with.
    pub nonce: [u8; NONCE_BYTES],
    /// Ciphertext followed by the 16-byte tag.
    pub sealed: Vec<u8>,
}

impl Envelope {
    /// `v1.<nonce>.<sealed>`.
    pub fn encode(&self) -> String {
        format!(
            "{VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(self.nonce),
            URL_SAFE_NO_PAD.encode(&self.sealed)
        )
    }

    /// The envelope in stored text, if it is one of this version with a whole nonce and at
    /// least a tag.
    pub fn parse(text: &str) -> Option<Envelope> {
        let mut parts = text.split('.');
        let (Some(VERSION), Some(nonce), Some(sealed), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let nonce: [u8; NONCE_BYTES] = URL_SAFE_NO_PAD.decode(nonce).ok()?.try_into().ok()?;
        let sealed = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        (sealed.len() >= TAG_BYTES).then_some(Envelope { nonce, sealed })
    }
}

/// `SETTINGS_KEY`: 32 bytes in base64 (standard or URL-safe, padded or not, as `openssl rand
/// -base64 32` and other tools print it). Anything else is refused, never stretched: a short
/// or mistyped key would quietly weaken every value.
pub fn parse_key(text: &str) -> Result<[u8; KEY_BYTES], String> {
    let text = text.trim();
    let bytes = [&STANDARD, &URL_SAFE]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())
        .ok_or("SETTINGS_KEY is not base64 (make one with `openssl rand -base64 32`).")?;
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        format!(
            "SETTINGS_KEY must be 32 bytes (base64 of 32 random bytes), not {}.",
            bytes.len()
        )
    })
}

/// A Web Crypto failure (the runtime's own error, for the log).
#[derive(Debug)]
pub struct CryptoError(pub String);

impl From<JsValue> for CryptoError {
    fn from(e: JsValue) -> Self {
        CryptoError(format!("{e:?}"))
    }
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn subtle() -> Result<web_sys::SubtleCrypto, CryptoError> {
    // Unchecked: the runtime's classes need not be globals for an `instanceof` check.
    let crypto: web_sys::Crypto =
        js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?.unchecked_into();
    Ok(crypto.subtle())
}

/// The AES-GCM algorithm object for one value: its nonce and its name as additional data.
fn algorithm(nonce: &[u8], name: &str) -> Result<js_sys::Object, CryptoError> {
    let algorithm = js_sys::Object::new();
    let set = |key: &str, value: &JsValue| js_sys::Reflect::set(&algorithm, &key.into(), value);
    set("name", &"AES-GCM".into())?;
    set("iv", &js_sys::Uint8Array::from(nonce).into())?;
    set(
        "additionalData",
        &js_sys::Uint8Array::from(name.as_bytes()).into(),
    )?;
    set("tagLength", &JsValue::from(TAG_BYTES as u32 * 8))?;
    Ok(algorithm)
}

/// `SETTINGS_KEY` as a non-extractable AES-GCM key.
pub async fn import(raw: &[u8; KEY_BYTES]) -> Result<web_sys::CryptoKey, CryptoError> {
    let algorithm = js_sys::Object::new();
    js_sys::Reflect::set(&algorithm, &"name".into(), &"AES-GCM".into())?;
    let usages = js_sys::Array::of2(&"encrypt".into(), &"decrypt".into());
    let key_data = js_sys::Uint8Array::from(raw.as_slice());
    let key = JsFuture::from(
        subtle()?.import_key_with_object("raw", &key_data, &algorithm, false, &usages)?,
    )
    .await?;
    Ok(key.unchecked_into())
}

/// Seals `value` for the setting `name` under a fresh random nonce.
pub async fn seal(
    key: &web_sys::CryptoKey,
    name: &str,
    value: &str,
) -> Result<String, CryptoError> {
    let mut nonce = [0u8; NONCE_BYTES];
    crate::random::fill(&mut nonce);
    let sealed = JsFuture::from(subtle()?.encrypt_with_object_and_u8_array(
        &algorithm(&nonce, name)?,
        key,
        value.as_bytes(),
    )?)
    .await?;
    let sealed = js_sys::Uint8Array::new(&sealed).to_vec();
    Ok(Envelope { nonce, sealed }.encode())
}

/// Opens a value sealed for the setting `name`: `None` when it is not an envelope, was sealed
/// under another key or for another setting, or was altered.
pub async fn open(key: &web_sys::CryptoKey, name: &str, stored: &str) -> Option<String> {
    let envelope = Envelope::parse(stored)?;
    let algorithm = algorithm(&envelope.nonce, name).ok()?;
    let promise = subtle()
        .ok()?
        .decrypt_with_object_and_u8_array(&algorithm, key, &envelope.sealed)
        .ok()?;
    // Web Crypto rejects on a tag that does not verify (wrong key, name or bytes).
    let plain = JsFuture::from(promise).await.ok()?;
    String::from_utf8(js_sys::Uint8Array::new(&plain).to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_is_versioned_base64url_and_reads_back() {
        let envelope = Envelope {
            nonce: [7; NONCE_BYTES],
            sealed: vec![0xff; 40],
        };
        let text = envelope.encode();
        assert!(text.starts_with("v1."), "{text}");
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "base64url without padding: {text}"
        );
        assert_eq!(text.split('.').nth(1).map(str::len), Some(16), "96 bits");
        assert_eq!(Envelope::parse(&text), Some(envelope));
    }

    #[test]
    fn anything_but_a_whole_v1_envelope_is_refused() {
        let good = Envelope {
            nonce: [1; NONCE_BYTES],
            sealed: vec![2; TAG_BYTES],
        }
        .encode();
        assert!(Envelope::parse(&good).is_some());
        for bad in [
            good.replacen("v1.", "v2.", 1),
            good.replacen("v1.", "", 1),
            format!("{good}.extra"),
            // A nonce of 64 bits.
            format!(
                "v1.{}.{}",
                URL_SAFE_NO_PAD.encode([1u8; 8]),
                URL_SAFE_NO_PAD.encode([2u8; 16])
            ),
            // Shorter than a tag.
            format!(
                "v1.{}.{}",
                URL_SAFE_NO_PAD.encode([1u8; 12]),
                URL_SAFE_NO_PAD.encode([2u8; 15])
            ),
            "plain text".to_owned(),
            String::new(),
        ] {
            assert_eq!(Envelope::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn the_settings_key_is_exactly_32_bytes_of_base64_in_any_common_spelling() {
        let raw: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(250))
            .collect();
        for spelled in [
            STANDARD.encode(&raw),
            URL_SAFE.encode(&raw),
            URL_SAFE_NO_PAD.encode(&raw),
            format!("  {}\n", STANDARD.encode(&raw)),
        ] {
            assert_eq!(
                parse_key(&spelled).map(|k| k.to_vec()),
                Ok(raw.clone()),
                "{spelled}"
            );
        }
        let short = parse_key(&STANDARD.encode([1u8; 16])).expect_err("16 bytes");
        assert!(short.contains("32 bytes"), "{short}");
        assert!(parse_key("not base64 at all!").is_err());
        assert!(parse_key("").is_err());
    }
}
