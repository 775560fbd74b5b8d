//! Smoke tests of the loopback OIDC issuer fixture (`OidcIssuer`): a real Node 22 process whose
//! tokens are checked here with the `jsonwebtoken` crate against its own discovery and JWKS, and
//! whose GitHub endpoint is driven both the way npm does it and by the real npm CLI.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use airlock_testkit::{
    HttpRequest, JwtAlg, MintOptions, NpmEnv, OidcIssuer, github_claims, unix_now,
};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};

fn issuer() -> OidcIssuer {
    match OidcIssuer::start() {
        Ok(i) => i,
        Err(e) => panic!("starting the OIDC issuer failed: {e:#}"),
    }
}

/// Splits `http://127.0.0.1:PORT/path?query` into (`127.0.0.1:PORT`, `/path?query`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let slash = rest.find('/').unwrap();
    (rest[..slash].to_owned(), rest[slash..].to_owned())
}

fn get_json(url: &str) -> Value {
    let (host, path) = split_url(url);
    let resp = HttpRequest::new(&host, "GET", &path).send();
    resp.assert_status(200);
    resp.json()
}

/// Discovery, then the JWKS it names: what a registry does.
fn discover_jwks(issuer: &OidcIssuer) -> JwkSet {
    let discovery = get_json(&issuer.discovery_url());
    assert_eq!(discovery["issuer"], json!(issuer.issuer_url()));
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, issuer.jwks_url());
    serde_json::from_value(get_json(jwks_uri)).unwrap()
}

/// Verifies `token` against the JWKS (key chosen by the header's kid), with audience and issuer.
fn verify(
    jwks: &JwkSet,
    issuer: &OidcIssuer,
    token: &str,
    aud: &str,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let header = decode_header(token)?;
    let kid = header.kid.clone().unwrap_or_default();
    let Some(jwk) = jwks.find(&kid) else {
        return Err(ErrorKind::InvalidKeyFormat.into());
    };
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[issuer.issuer_url()]);
    validation.validate_nbf = true;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "aud", "iss"]);
    Ok(decode::<Value>(token, &key, &validation)?.claims)
}

fn payload_of(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn demo_claims() -> Value {
    github_claims(
        "octo-org/demo",
        123_456,
        654_321,
        "publish.yml",
        "refs/heads/main",
        Some("prod"),
    )
}

#[test]
fn discovery_jwks_and_minted_es256_rs256_tokens_verify() {
    let issuer = issuer();
    assert!(issuer.issuer_url().starts_with("http://127.0.0.1:"));
    assert!(!issuer.issuer_url().ends_with('/'));
    let jwks = discover_jwks(&issuer);
    let mut algs: Vec<String> = jwks
        .keys
        .iter()
        .map(|k| format!("{:?}", k.common.key_algorithm.unwrap()))
        .collect();
    algs.sort();
    assert_eq!(algs, ["ES256", "RS256"]);

    let claims = demo_claims();
    let mut jtis = Vec::new();
    for (alg, expected) in [
        (JwtAlg::Es256, Algorithm::ES256),
        (JwtAlg::Rs256, Algorithm::RS256),
    ] {
        let token = issuer.mint(
            MintOptions::new(claims.clone())
                .audience("npm:127.0.0.1")
                .alg(alg),
        );
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, expected);
        assert_eq!(
            header.kid.as_deref(),
            Some(issuer.published_key(alg).kid.as_str())
        );
        let got = verify(&jwks, &issuer, &token, "npm:127.0.0.1").unwrap();
        for k in [
            "repository",
            "repository_id",
            "repository_owner_id",
            "workflow_ref",
            "job_workflow_ref",
            "environment",
            "sub",
        ] {
            assert_eq!(got[k], claims[k], "claim {k}");
        }
        assert_eq!(
            got["workflow_ref"],
            json!("octo-org/demo/.github/workflows/publish.yml@refs/heads/main")
        );
        assert_eq!(got["repository_id"], json!("123456"));
        assert_eq!(got["iss"], json!(issuer.issuer_url()));
        let (iat, exp) = (got["iat"].as_i64().unwrap(), got["exp"].as_i64().unwrap());
        assert!((iat - unix_now()).abs() < 30, "{got}");
        assert_eq!(exp - iat, 300);
        jtis.push(got["jti"].as_str().unwrap().to_owned());
        // Another audience is refused by a correct verifier.
        let err = verify(&jwks, &issuer, &token, "npm:registry.example").unwrap_err();
        assert_eq!(*err.kind(), ErrorKind::InvalidAudience);
    }
    assert_ne!(jtis[0], jtis[1], "jti must be unique per token");
}

#[test]
fn mint_options_produce_the_tokens_negative_tests_need() {
    let issuer = issuer();
    let jwks = discover_jwks(&issuer);
    let base = || MintOptions::new(demo_claims()).audience("npm:127.0.0.1");
    let now = unix_now();

    // Expired, not yet valid, missing exp.
    let expired = issuer.mint(base().iat(now - 3600).exp(now - 600));
    let err = verify(&jwks, &issuer, &expired, "npm:127.0.0.1").unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::ExpiredSignature);
    let future = issuer.mint(base().iat(now).nbf(now + 3600).exp(now + 7200));
    let err = verify(&jwks, &issuer, &future, "npm:127.0.0.1").unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::ImmatureSignature);
    let no_exp = issuer.mint(base().claim("exp", Value::Null));
    assert!(payload_of(&no_exp).get("exp").is_none());
    let err = verify(&jwks, &issuer, &no_exp, "npm:127.0.0.1").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::MissingRequiredClaim(c) if c == "exp"),
        "{err:?}"
    );
    let long = issuer.mint(base().lifetime_secs(7200));
    let p = payload_of(&long);
    assert_eq!(
        p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(),
        7200
    );

    // Another issuer claimed.
    let other_iss = issuer.mint(base().claim("iss", json!("http://127.0.0.1:1")));
    let err = verify(&jwks, &issuer, &other_iss, "npm:127.0.0.1").unwrap_err();
    assert_eq!(*err.kind(), ErrorKind::InvalidIssuer);

    // Fixed jti (two tokens, one jti), and the default: a fresh jti per token.
    let a = issuer.mint(base().claim("jti", json!("same-jti")));
    let b = issuer.mint(base().claim("jti", json!("same-jti")).lifetime_secs(60));
    assert_ne!(a, b);
    assert_eq!(payload_of(&a)["jti"], json!("same-jti"));
    assert_eq!(payload_of(&b)["jti"], json!("same-jti"));
    assert_ne!(
        payload_of(&issuer.mint(base()))["jti"],
        payload_of(&issuer.mint(base()))["jti"]
    );

    // A key that is not in the JWKS: its own kid is unknown, and claiming a published kid fails
    // the signature check.
    for alg in [JwtAlg::Rs256, JwtAlg::Es256] {
        let unknown = issuer.mint(base().alg(alg).unknown_key());
        let kid = decode_header(&unknown).unwrap().kid.unwrap();
        assert!(jwks.find(&kid).is_none(), "{kid} must not be published");
        let published_kid = issuer.published_key(alg).kid;
        let forged = issuer.mint(base().alg(alg).unknown_key().kid(&published_kid));
        let err = verify(&jwks, &issuer, &forged, "npm:127.0.0.1").unwrap_err();
        assert_eq!(*err.kind(), ErrorKind::InvalidSignature, "{alg:?}");
    }
    let keys = issuer.keys();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys.iter().filter(|k| k.published).count(), 2);
    assert!(
        keys.iter()
            .all(|k| k.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"))
    );

    // kid swapped to the other published key, and no kid at all.
    let es_kid = issuer.published_key(JwtAlg::Es256).kid;
    let swapped = issuer.mint(base().alg(JwtAlg::Rs256).kid(&es_kid));
    let header = decode_header(&swapped).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::RS256, Some(es_kid.as_str()))
    );
    let no_kid = issuer.mint(base().omit_kid());
    assert_eq!(decode_header(&no_kid).unwrap().kid, None);

    // HS256 with a chosen secret (verifies with that secret), and with the RSA public key PEM.
    let hs = issuer.mint(base().hs256("s3cret"));
    assert_eq!(decode_header(&hs).unwrap().alg, Algorithm::HS256);
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&["npm:127.0.0.1"]);
    decode::<Value>(&hs, &DecodingKey::from_secret(b"s3cret"), &v).unwrap();
    let pem = issuer.public_key_pem(JwtAlg::Rs256);
    let confused = issuer.mint(
        base()
            .hs256(&pem)
            .kid(&issuer.published_key(JwtAlg::Rs256).kid),
    );
    decode::<Value>(&confused, &DecodingKey::from_secret(pem.as_bytes()), &v).unwrap();

    // alg none: empty signature, and jsonwebtoken refuses it.
    let none = issuer.mint(base().alg(JwtAlg::None));
    assert!(none.ends_with('.'), "{none}");
    let header_json = {
        use base64::Engine as _;
        let h = none.split('.').next().unwrap();
        serde_json::from_slice::<Value>(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header_json["alg"], json!("none"));
    assert!(
        decode_header(&none).is_err(),
        "jsonwebtoken knows no alg none"
    );
}

#[test]
fn github_endpoint_answers_like_actions_id_token_request_url() {
    let issuer = issuer();
    let jwks = discover_jwks(&issuer);
    issuer.set_github_claims(demo_claims());
    let env: std::collections::HashMap<String, String> =
        issuer.github_actions_env().into_iter().collect();
    assert_eq!(env["GITHUB_ACTIONS"], "true");
    assert_eq!(env["CI"], "true");
    assert_eq!(env["GITHUB_REPOSITORY"], "octo-org/demo");
    assert_eq!(env["GITHUB_REPOSITORY_ID"], "123456");
    assert_eq!(
        env["GITHUB_WORKFLOW_REF"],
        "octo-org/demo/.github/workflows/publish.yml@refs/heads/main"
    );
    let request_url = &env["ACTIONS_ID_TOKEN_REQUEST_URL"];
    assert!(request_url.contains('?'), "GitHub's URL carries a query");

    // What npm does: `${ACTIONS_ID_TOKEN_REQUEST_URL}&audience=npm%3A127.0.0.1` with the bearer.
    let (host, path) = split_url(&format!("{request_url}&audience=npm%3A127.0.0.1"));
    let fetch = |bearer: &str| {
        HttpRequest::new(&host, "GET", &path)
            .header("accept", "application/json")
            .bearer(bearer)
            .send()
    };
    let resp = fetch(&env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]);
    resp.assert_status(200);
    let token = resp.json()["value"].as_str().unwrap().to_owned();
    assert_eq!(decode_header(&token).unwrap().alg, Algorithm::RS256);
    let claims = verify(&jwks, &issuer, &token, "npm:127.0.0.1").unwrap();
    assert_eq!(claims["aud"], json!("npm:127.0.0.1"));
    assert_eq!(claims["repository"], json!("octo-org/demo"));
    assert_eq!(claims["environment"], json!("prod"));
    assert_eq!(claims["iss"], json!(issuer.issuer_url()));
    let second = issuer.github_token(Some("npm:127.0.0.1"));
    assert_ne!(payload_of(&second)["jti"], claims["jti"]);
    // Without an audience GitHub uses the owner's URL.
    assert_eq!(
        payload_of(&issuer.github_token(None))["aud"],
        json!("https://github.com/octo-org")
    );

    // Wrong bearer: 401, and the template can be changed between tokens.
    fetch("not-the-request-token").assert_status(401);
    let mut recreated = demo_claims();
    recreated["repository_id"] = json!("999");
    issuer.set_github_claims(recreated);
    let third = issuer.github_token(Some("npm:127.0.0.1"));
    assert_eq!(payload_of(&third)["repository_id"], json!("999"));

    let log = issuer.github_token_requests();
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(log[0].authorized && log[0].audience.as_deref() == Some("npm:127.0.0.1"));
    assert!(!log[3].authorized);
}

/// The real npm CLI, given `github_actions_env`, asks the endpoint for an `npm:<registry host>`
/// token before publishing (the registry here is a closed port, so the publish itself fails).
#[test]
fn real_npm_fetches_its_id_token_from_the_issuer() {
    let issuer = issuer();
    issuer.set_github_claims(demo_claims());
    let npm = NpmEnv::for_registry("http://127.0.0.1:1/", "127.0.0.1:1")
        .with_envs(issuer.github_actions_env());
    let dir = npm.work_dir().join("pkg");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        r#"{"name":"@octo-org/demo","version":"1.0.0"}"#,
    )
    .unwrap();
    let out = npm.npm_in(
        &dir,
        &[
            "publish",
            "--provenance=false",
            "--fetch-retries=0",
            "--loglevel=silly",
        ],
    );
    out.assert_failed();
    let log = issuer.github_token_requests();
    assert_eq!(log.len(), 1, "npm must ask for one ID token: {out:?}");
    assert!(log[0].authorized, "{log:?}");
    assert_eq!(log[0].audience.as_deref(), Some("npm:127.0.0.1"));
    assert!(
        log[0]
            .url
            .starts_with("/github/token?api-version=2.0&audience=npm%3A127.0.0.1"),
        "{log:?}"
    );

    // Without the environment npm never asks (nothing leaks in from the test process).
    let plain = NpmEnv::for_registry("http://127.0.0.1:1/", "127.0.0.1:1");
    plain
        .npm_in(
            &dir,
            &["publish", "--provenance=false", "--fetch-retries=0"],
        )
        .assert_failed();
    assert_eq!(issuer.github_token_requests().len(), 1);
}
