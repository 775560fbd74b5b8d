//! The browser side of `npm login`: a small form, no JavaScript.

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} · Airlock</title>
<style>body{{font:16px system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem;font:inherit}}
button{{margin-top:1rem;padding:.5rem 1rem;font:inherit}}.error{{color:#b00020}}</style></head>
<body><h1>{title}</h1>
{body}
</body></html>"#,
        title = escape(title)
    )
}

/// The login form. `error` is shown above it after a failed attempt.
pub(crate) fn login_form(action: &str, offer_signup: bool, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    let signup = if offer_signup {
        r#"<label for="email">Email (only to create a new account)</label><input id="email" name="email" type="email" autocomplete="email">"#
    } else {
        ""
    };
    page(
        "Log in to npm",
        &format!(
            r#"<p>A terminal is waiting for you to log in. Only continue if you just ran <code>npm login</code> yourself.</p>
{error}<form method="post" action="{action}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<label for="otp">Authenticator code (if you turned on two-factor authentication)</label><input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code">
{signup}
<button type="submit">Log in</button></form>"#,
            action = escape(action)
        ),
    )
}

/// The web-OTP form: one code from the authenticator (or a recovery code).
pub(crate) fn otp_form(action: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    page(
        "Confirm with your authenticator",
        &format!(
            r#"<p>A command you ran needs a one-time password. Only continue if you started it yourself.</p>
{error}<form method="post" action="{action}">
<label for="otp">Code from your authenticator app, or a recovery code</label><input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" required autofocus>
<button type="submit">Confirm</button></form>"#,
            action = escape(action)
        ),
    )
}

pub(crate) fn otp_done() -> String {
    page(
        "Confirmed",
        "<p>Confirmed. Return to your terminal; the command continues by itself.</p>",
    )
}

pub(crate) fn logged_in(user: &str) -> String {
    page(
        "Logged in",
        &format!(
            "<p>You are logged in as <strong>{}</strong>. Return to your terminal.</p>",
            escape(user)
        ),
    )
}

pub(crate) fn expired() -> String {
    page(
        "Login expired",
        "<p>This login link has expired or was already used. Run <code>npm login</code> again.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_input_is_escaped() {
        let html = login_form("/-/web/login/x", false, Some("<script>alert(1)</script>"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
