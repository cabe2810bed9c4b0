//! Sign in with Apple's client secret: a JWT signed with ES256 by the developer's private key
//! (team id, key id, PKCS#8 PEM), made fresh for each token request.
//! <https://developer.apple.com/documentation/accountorganizationalanddatasharing/creating-a-client-secret>

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;

/// The audience Apple requires.
pub const AUDIENCE: &str = "https://appleid.apple.com";
/// Lifetime of a generated secret (Apple allows up to six months; each one is used once).
const LIFETIME_SECONDS: i64 = 300;

/// What signs Apple client secrets.
#[derive(Clone)]
pub struct AppleKey {
    /// The Apple developer team id (`iss`).
    pub team_id: String,
    /// The key's id (`kid`).
    pub key_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for AppleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleKey")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AppleKey {
    /// Reads the PKCS#8 PEM private key (`APPLE_PRIVATE_KEY`; a `\n` written literally, as in
    /// a one-line `.dev.vars` entry, counts as a newline).
    pub fn new(team_id: &str, key_id: &str, pem: &str) -> Result<AppleKey, String> {
        let pem = pem.replace("\\n", "\n");
        let key = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| format!("APPLE_PRIVATE_KEY is not a PKCS#8 P-256 key: {e}"))?;
        Ok(AppleKey {
            team_id: team_id.to_owned(),
            key_id: key_id.to_owned(),
            key,
        })
    }

    /// A client secret for `client_id` (the Services ID), issued at `now_seconds`.
    pub fn client_secret(&self, client_id: &str, now_seconds: i64) -> String {
        let header = serde_json::json!({ "alg": "ES256", "kid": self.key_id, "typ": "JWT" });
        let claims = serde_json::json!({
            "iss": self.team_id,
            "iat": now_seconds,
            "exp": now_seconds + LIFETIME_SECONDS,
            "aud": AUDIENCE,
            "sub": client_id,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // RFC 6979 deterministic ECDSA: no randomness needed. JWS wants r || s (64 bytes).
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    fn pem() -> (String, VerifyingKey) {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        (pem, *key.verifying_key())
    }

    #[test]
    fn the_client_secret_is_an_es256_jwt_apple_can_verify() {
        let (pem, public) = pem();
        let key = AppleKey::new("TEAM123", "KEY456", &pem).unwrap();
        let jwt = key.client_secret("com.example.chat", 1_000);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "KEY456");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "TEAM123");
        assert_eq!(claims["sub"], "com.example.chat");
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(claims["exp"], 1_300);
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(input.as_bytes(), &signature).is_ok());
        assert!(public.verify(b"tampered", &signature).is_err());
    }

    #[test]
    fn a_one_line_pem_with_literal_newlines_is_accepted_and_garbage_is_not() {
        let (pem, _) = pem();
        let one_line = pem.replace('\n', "\\n");
        assert!(AppleKey::new("T", "K", &one_line).is_ok());
        assert!(AppleKey::new("T", "K", "not a key").is_err());
    }
}
