#![doc = include_str!("../README.md")]

mod password;
mod random;
mod token;
mod totp;

pub use password::{PasswordError, hash_password, verify_password};
pub use random::random_hex;
pub use token::{ApiToken, TOKEN_PREFIX, TokenError, TokenHash};
pub use totp::{TOTP_STEP_SECS, TotpSecret};
