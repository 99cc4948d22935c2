//! Session tokens: HS256 JWTs with issuer, audience and expiry checked, the algorithm
//! pinned (a token naming any other, `none` included, is refused) and a key id so that keys
//! can be rotated without logging everyone out.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JwtSettings;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The user's token version when issued; a password change bumps it.
    pub ver: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

pub struct JwtKeys {
    key_id: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    ttl: Duration,
    issuer: String,
    audience: String,
}

impl JwtKeys {
    pub fn new(settings: &JwtSettings, current_secret: &[u8]) -> Self {
        let mut decoding = HashMap::new();
        decoding.insert(
            settings.key_id.clone(),
            DecodingKey::from_secret(current_secret),
        );
        for (kid, secret) in &settings.previous_keys {
            decoding.insert(
                kid.clone(),
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            key_id: settings.key_id.clone(),
            encoding: EncodingKey::from_secret(current_secret),
            decoding,
            validation,
            ttl: settings.ttl,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        }
    }

    pub fn issue(&self, user_id: Uuid, token_version: i32) -> (String, DateTime<Utc>) {
        let now = Utc::now();
        let expires_at = now + self.ttl;
        let claims = Claims {
            sub: user_id,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: Uuid::new_v4(),
            ver: token_version,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.key_id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        (token, expires_at)
    }

    /// A short-lived signed value for another audience (download links, say).
    pub fn sign_value(&self, audience: &str, ttl: Duration, value: serde_json::Value) -> String {
        let now = Utc::now();
        let claims = serde_json::json!({
            "iss": self.issuer, "aud": audience, "iat": now.timestamp(),
            "exp": (now + ttl).timestamp(), "val": value,
        });
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    pub fn verify_value(
        &self,
        audience: &str,
        token: &str,
    ) -> Result<serde_json::Value, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(TokenError::Invalid)?;
        let mut validation = self.validation.clone();
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<serde_json::Value>(token, key, &validation)
            .map(|data| data.claims["val"].clone())
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(TokenError::Invalid)?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings() -> JwtSettings {
        crate::config::Settings::default().jwt
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify() {
        let keys = JwtKeys::new(&settings(), SECRET);
        let user = Uuid::new_v4();
        let (token, _) = keys.issue(user, 3);
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.ver), (user, 3));
    }

    #[test]
    fn another_key_or_audience_is_refused() {
        let keys = JwtKeys::new(&settings(), SECRET);
        let other = JwtKeys::new(&settings(), b"another-secret-another-secret-!!");
        let (token, _) = other.issue(Uuid::new_v4(), 0);
        assert_eq!(keys.verify(&token).unwrap_err(), TokenError::Invalid);

        let mut s = settings();
        s.audience = "someone-else".into();
        let (token, _) = JwtKeys::new(&s, SECRET).issue(Uuid::new_v4(), 0);
        assert_eq!(keys.verify(&token).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn rotated_keys_still_verify_by_kid() {
        let old = JwtKeys::new(&settings(), SECRET);
        let (token, _) = old.issue(Uuid::new_v4(), 0);
        let mut s = settings();
        s.key_id = "k2".into();
        s.previous_keys = vec![(
            "k1".into(),
            SecretString::from(String::from_utf8(SECRET.to_vec()).unwrap()),
        )];
        let new = JwtKeys::new(&s, b"a-brand-new-secret-a-brand-new-s");
        assert!(new.verify(&token).is_ok());
    }
}
