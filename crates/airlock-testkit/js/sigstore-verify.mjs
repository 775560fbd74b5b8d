// Verifies Sigstore bundles with sigstore-js (`@sigstore/verify`), the independent verifier for the
// test Sigstore instance (driven by `SigstoreJs` in crates/airlock-testkit/src/sigstore/js.rs).
// Run with Node 22:
//
//   node sigstore-verify.mjs --tools-prefix <dir holding node_modules/@sigstore/verify>  < request.json
//
// request: {"trustedRoot": <trusted_root.json>, "cases": [{"name": "...", "bundle": <bundle JSON>,
//           "purl"?: "pkg:npm/...", "sha512"?: "<hex>", "san"?: "...", "issuer"?: "...",
//           "oids"?: [{"oid": "1.3.6.1.4.1.57264.1.15", "value": "<hex of the extension value>"}]}]}
// answer (stdout, one JSON document): {"results": [{"name", "verified", "error": {"name", "code",
//   "message"} | null, "identity": {"san", "issuer", "oids": {"1.2.3": "<hex value>"}} | null,
//   "subject": {"ok", "message"} | null}]}
//
// `verified` is `new Verifier(toTrustMaterial(TrustedRoot.fromJSON(root))).verify(entity, policy)`
// with the policy {subjectAlternativeName: san, extensions: {issuer}} when `san` is given, plus
// {oids} (each extension present with exactly that value) when `oids` is not empty.
// `subject` is npm's own provenance subject check (exactly one subject, named `purl`, whose
// digest.sha512 is `sha512`), only when `purl` is given.

import { createRequire } from "node:module";
import { join } from "node:path";

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i === -1 || i + 1 >= process.argv.length) {
    throw new Error(`missing argument ${name}`);
  }
  return process.argv[i + 1];
}

const require = createRequire(join(arg("--tools-prefix"), "package.json"));
const { Verifier, toSignedEntity, toTrustMaterial } = require("@sigstore/verify");
const { bundleFromJSON } = require("@sigstore/bundle");
const { TrustedRoot } = require("@sigstore/protobuf-specs");

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function describe(err) {
  return { name: err?.name ?? "Error", code: err?.code ?? null, message: String(err?.message ?? err) };
}

function subjectCheck(bundleJson, purl, sha512) {
  try {
    const payload = Buffer.from(bundleJson.dsseEnvelope.payload, "base64").toString("utf8");
    const statement = JSON.parse(payload);
    const subjects = statement.subject ?? [];
    if (subjects.length !== 1) {
      return { ok: false, message: `expected one subject, found ${subjects.length}` };
    }
    if (subjects[0].name !== purl) {
      return { ok: false, message: `subject ${subjects[0].name} is not ${purl}` };
    }
    if (subjects[0].digest?.sha512 !== sha512) {
      return { ok: false, message: `subject sha512 ${subjects[0].digest?.sha512} is not ${sha512}` };
    }
    return { ok: true, message: "subject matches" };
  } catch (err) {
    return { ok: false, message: `unreadable statement: ${describe(err).message}` };
  }
}

const request = await readStdin();
const verifier = new Verifier(toTrustMaterial(TrustedRoot.fromJSON(request.trustedRoot)));
const results = [];
for (const c of request.cases) {
  const result = { name: c.name, verified: false, error: null, identity: null, subject: null };
  try {
    const entity = toSignedEntity(bundleFromJSON(c.bundle));
    let policy;
    if (c.san) {
      policy = { subjectAlternativeName: c.san, extensions: { issuer: c.issuer } };
    }
    if (c.oids?.length) {
      policy = policy ?? {};
      policy.oids = c.oids.map((o) => ({
        oid: { id: o.oid.split(".").map(Number) },
        value: Buffer.from(o.value, "hex"),
      }));
    }
    const signer = verifier.verify(entity, policy);
    result.verified = true;
    const oids = {};
    for (const o of signer.identity?.oids ?? []) {
      oids[o.oid.id.join(".")] = Buffer.from(o.value).toString("hex");
    }
    result.identity = {
      san: signer.identity?.subjectAlternativeName ?? null,
      issuer: signer.identity?.extensions?.issuer ?? null,
      oids,
    };
  } catch (err) {
    result.error = describe(err);
  }
  if (c.purl) {
    result.subject = subjectCheck(c.bundle, c.purl, c.sha512);
  }
  results.push(result);
}
process.stdout.write(JSON.stringify({ results }));
