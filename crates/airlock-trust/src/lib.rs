#![doc = include_str!("../README.md")]

pub mod oidc;
mod password;
mod random;
mod signing;
pub mod sigstore;
mod token;
mod totp;

pub use password::{PasswordError, hash_password, verify_password};
pub use random::random_hex;
pub use signing::{
    KEY_TYPE, KeyId, Keyring, ListedKey, PublicKey, SigningError, SigningKey, signature_message,
};
pub use token::{ApiToken, TOKEN_PREFIX, TokenError, TokenHash};
pub use totp::{TOTP_STEP_SECS, TotpSecret};
