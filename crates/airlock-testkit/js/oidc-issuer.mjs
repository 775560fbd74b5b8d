// A loopback OIDC issuer for Airlock's trusted-publishing tests (driven by `OidcIssuer` in
// crates/airlock-testkit/src/oidc.rs). Run with Node 22:
//
//   node oidc-issuer.mjs --tools-prefix <dir holding node_modules/oauth2-mock-server>
//
// It listens on 127.0.0.1 (port chosen by the OS) and prints one ready line on stdout:
//
//   oidc-issuer: ready http://127.0.0.1:PORT request-token=<token>
//
// Served routes:
//   GET  /.well-known/openid-configuration, GET /jwks    (oauth2-mock-server; issuer = base URL)
//   GET  /github/token?api-version=2.0&audience=…       (GitHub's ACTIONS_ID_TOKEN_REQUEST_URL)
//   POST /control/github   {"claims": {...}}             claims template for /github/token
//   POST /control/mint     {...}                         any token, see `mint` below
//   GET  /control/keys                                   published and unpublished keys (public PEM)
//   GET  /control/github-requests                        what /github/token was asked
// It exits when its stdin closes, so it never outlives the test process that started it.

import { createHmac, createPublicKey, randomBytes, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i === -1 || i + 1 >= process.argv.length) {
    throw new Error(`missing argument ${name}`);
  }
  return process.argv[i + 1];
}

// oauth2-mock-server is installed under the tools prefix, not next to this file, so resolve it
// from there (its package `exports` has a `default` condition, which require.resolve accepts).
const toolsPrefix = arg("--tools-prefix");
const entry = createRequire(join(toolsPrefix, "package.json")).resolve("oauth2-mock-server");
const { OAuth2Server, OAuth2Issuer, Events } = await import(pathToFileURL(entry).href);

const DEFAULT_LIFETIME_SECS = 300;
const ASYMMETRIC = ["RS256", "ES256"];

const server = new OAuth2Server();
const published = server.issuer.keys;
const unpublished = new OAuth2Issuer();
const shortId = () => randomBytes(6).toString("hex");
const keys = { published: {}, unpublished: {} };
for (const alg of ASYMMETRIC) {
  const lower = alg.toLowerCase();
  keys.published[alg] = await published.generate(alg, { kid: `${lower}-${shortId()}` });
  keys.unpublished[alg] = await unpublished.keys.generate(alg, {
    kid: `unpublished-${lower}-${shortId()}`,
  });
}

// The secret npm's GitHub path sends as `Authorization: Bearer …` (ACTIONS_ID_TOKEN_REQUEST_TOKEN).
const requestToken = `ghreq_${randomBytes(24).toString("hex")}`;
let githubClaims = null;
const githubRequests = [];

function nowSecs() {
  return Math.floor(Date.now() / 1000);
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.end(text);
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// Copies `claims` over `payload`; a claim whose value is null is removed instead.
function applyClaims(payload, claims) {
  for (const [k, v] of Object.entries(claims ?? {})) {
    if (v === null) {
      delete payload[k];
    } else {
      payload[k] = v;
    }
  }
}

function b64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

// Signs `payload` with the named algorithm. RS256/ES256 go through oauth2-mock-server's issuer
// (published keys) or a second issuer whose keys are never published (`unknownKey`).
async function sign({ alg, payload, kid, unknownKey, hmacSecret, extraHeader }) {
  if (ASYMMETRIC.includes(alg)) {
    const issuer = unknownKey ? unpublished : server.issuer;
    const key = (unknownKey ? keys.unpublished : keys.published)[alg];
    issuer.url = server.issuer.url;
    return await issuer.buildToken({
      kid: key.kid,
      scopesOrTransform: (header, body) => {
        for (const k of Object.keys(body)) delete body[k];
        Object.assign(body, payload);
        Object.assign(header, extraHeader ?? {});
        if (kid !== undefined) {
          if (kid === null) delete header.kid;
          else header.kid = kid;
        }
      },
    });
  }
  const header = { alg, typ: "JWT", ...(extraHeader ?? {}) };
  if (typeof kid === "string") header.kid = kid;
  const signingInput = `${b64url(header)}.${b64url(payload)}`;
  if (alg === "HS256") {
    const secret = hmacSecret ?? "airlock-test-hs256-secret";
    const mac = createHmac("sha256", secret).update(signingInput).digest("base64url");
    return `${signingInput}.${mac}`;
  }
  if (alg === "none") {
    return `${signingInput}.`;
  }
  throw new Error(`unsupported alg ${JSON.stringify(alg)} (RS256, ES256, HS256, none)`);
}

// POST /control/mint. Body fields (all optional):
//   claims: object merged over the defaults (null removes a claim, e.g. {"exp": null})
//   audience: string or array, set as `aud`
//   alg: "RS256" (default) | "ES256" | "HS256" | "none"
//   kid: header kid override (null removes it); unknown_key: sign with a key not in the JWKS
//   hmac_secret: the HS256 secret; header: extra JOSE header fields
//   iat, nbf, exp: absolute seconds; lifetime_secs: exp - iat when exp is not given (default 300)
// Defaults: iss = this issuer, iat = now, nbf = iat - 10, exp = iat + lifetime, jti = a fresh UUID.
async function mint(body) {
  const iat = body.iat ?? nowSecs();
  const payload = {
    iss: server.issuer.url,
    jti: randomUUID(),
    iat,
    nbf: body.nbf ?? iat - 10,
    exp: body.exp ?? iat + (body.lifetime_secs ?? DEFAULT_LIFETIME_SECS),
  };
  if (body.audience !== undefined && body.audience !== null) payload.aud = body.audience;
  applyClaims(payload, body.claims);
  return await sign({
    alg: body.alg ?? "RS256",
    payload,
    kid: body.kid,
    unknownKey: body.unknown_key === true,
    hmacSecret: body.hmac_secret,
    extraHeader: body.header,
  });
}

const service = server.service;

// Advertise both published algorithms (the library lists only RS256).
service.on(Events.BeforeWellKnownOpenIdConfiguration, (response) => {
  response.body.id_token_signing_alg_values_supported = [...ASYMMETRIC];
});

service.addRoute("GET", "/github/token", async (req, res) => {
  const audience = typeof req.query.audience === "string" ? req.query.audience : null;
  const authorized = req.headers.authorization === `Bearer ${requestToken}`;
  githubRequests.push({ audience, authorized, url: req.url });
  if (!authorized) {
    sendJson(res, 401, { message: "Bad credentials: wrong ACTIONS_ID_TOKEN_REQUEST_TOKEN" });
    return;
  }
  if (githubClaims === null) {
    sendJson(res, 500, {
      message: "no GitHub claims template: call OidcIssuer::set_github_claims first",
    });
    return;
  }
  // Shaped like GitHub's: RS256, lives 5 minutes, `aud` defaults to the owner's URL.
  const iat = nowSecs();
  const payload = { iss: server.issuer.url, jti: randomUUID(), ...githubClaims };
  payload.aud = audience ?? `https://github.com/${githubClaims.repository_owner ?? ""}`;
  Object.assign(payload, { iat, nbf: iat - 10, exp: iat + DEFAULT_LIFETIME_SECS });
  const value = await sign({ alg: "RS256", payload });
  sendJson(res, 200, { value });
});

service.addRoute("POST", "/control/github", (req, res) => {
  if (!isObject(req.body) || !isObject(req.body.claims)) {
    sendJson(res, 400, { message: 'expected a JSON body {"claims": {...}}' });
    return;
  }
  githubClaims = req.body.claims;
  sendJson(res, 200, { ok: true });
});

service.addRoute("POST", "/control/mint", async (req, res) => {
  if (!isObject(req.body)) {
    sendJson(res, 400, { message: "expected a JSON object body" });
    return;
  }
  try {
    sendJson(res, 200, { token: await mint(req.body) });
  } catch (e) {
    sendJson(res, 400, { message: String(e?.message ?? e) });
  }
});

service.addRoute("GET", "/control/keys", (_req, res) => {
  const describe = (jwk, isPublished) => ({
    kid: jwk.kid,
    alg: jwk.alg,
    published: isPublished,
    public_pem: createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" }),
  });
  sendJson(res, 200, {
    keys: [
      ...ASYMMETRIC.map((alg) => describe(keys.published[alg], true)),
      ...ASYMMETRIC.map((alg) => describe(keys.unpublished[alg], false)),
    ],
  });
});

service.addRoute("GET", "/control/github-requests", (_req, res) => {
  sendJson(res, 200, { requests: githubRequests });
});

await server.start(0, "127.0.0.1");
const port = server.address().port;
// The library defaults to http://localhost:PORT; the registry is told the exact loopback URL.
server.issuer.url = `http://127.0.0.1:${port}`;

process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
process.stdout.write(`oidc-issuer: ready ${server.issuer.url} request-token=${requestToken}\n`);
