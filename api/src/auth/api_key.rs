//! Project API keys: long random strings shown once, stored as a SHA-256 hash.

use rand::{Rng, distr::Alphanumeric};
use sha2::{Digest, Sha256};

const KEY_MARKER: &str = "pk_";
const RANDOM_LEN: usize = 40;
/// How much of the key stays visible in lists.
const PREFIX_LEN: usize = 10;

pub struct NewKey {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

pub fn generate() -> NewKey {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_LEN)
        .map(char::from)
        .collect();
    let secret = format!("{KEY_MARKER}{random}");
    NewKey {
        prefix: secret[..PREFIX_LEN].to_owned(),
        hash: hash(&secret),
        secret,
    }
}

/// A fast hash is enough: the keys carry 238 bits of randomness, nothing to brute-force.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn looks_like_key(value: &str) -> bool {
    value.starts_with(KEY_MARKER) && value.len() == KEY_MARKER.len() + RANDOM_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_to_what_is_stored() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(looks_like_key(&a.secret));
        assert_eq!(hash(&a.secret), a.hash);
        assert!(a.secret.starts_with(&a.prefix));
        assert_ne!(a.hash, a.secret);
    }
}
