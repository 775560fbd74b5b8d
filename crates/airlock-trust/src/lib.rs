#![doc = include_str!("../README.md")]

mod password;
mod random;
mod token;

pub use password::{PasswordError, hash_password, verify_password};
pub use random::random_hex;
pub use token::{ApiToken, TOKEN_PREFIX, TokenError, TokenHash};
