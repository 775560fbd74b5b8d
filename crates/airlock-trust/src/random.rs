/// `len` bytes from the operating system's CSPRNG, hex encoded (so `2 * len` characters).
///
/// # Panics
/// If the operating system has no randomness to give, which leaves nothing safe to do.
#[must_use]
pub fn random_hex(len: usize) -> String {
    let mut buf = vec![0u8; len];
    #[expect(
        clippy::expect_used,
        reason = "no CSPRNG means no safe way to continue"
    )]
    getrandom::fill(&mut buf).expect("the operating system CSPRNG failed");
    hex::encode(buf)
}
