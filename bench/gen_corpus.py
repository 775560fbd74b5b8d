#!/usr/bin/env python3
"""Deterministic npm corpus for the Airlock benchmark.

Writes, under --out:
  manifest.json                 parameters, package list, the install set, probe picks
  packages/<name>.json          per package: the publish-ready version objects
  tarballs/<name>/<name>-<version>.tgz
                                real npm-style tarballs (gzip of a ustar with package/...)

Everything comes from one seeded RNG (random.Random(seed)), tarballs are built with fixed
mtimes/owners and gzip mtime 0, so two runs with the same parameters produce identical bytes.
"""

import argparse
import base64
import gzip
import hashlib
import io
import json
import math
import os
import random
import shutil
import sys
import tarfile
import time

GENERATOR_VERSION = 4

WORDS = (
    "fast small tiny modern robust async stream parse format render cache queue pool buffer "
    "logger config router schema validate color string array object date time path file glob "
    "http fetch client server socket worker task event emitter promise retry debounce throttle "
    "hash crypto token auth session cookie json yaml toml csv markdown html css image svg "
    "compiler bundler plugin loader transform minify lint test mock assert diff patch merge "
    "tree graph map set list heap trie sort search index store db sql orm query cli prompt"
).split()

DEV_DEPS = (
    "typescript eslint prettier jest mocha chai sinon nyc c8 vitest rollup esbuild webpack "
    "babel-core ts-node tsup tap ava xo standard husky lint-staged rimraf cross-env"
).split()


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_name(rng, used):
    while True:
        parts = [rng.choice(WORDS) for _ in range(rng.choice((1, 2, 2, 3)))]
        name = "-".join(parts)
        # A suffix on one-word names keeps clear of Node core module names (`crypto`, `http`),
        # which registries refuse.
        if len(parts) == 1 or rng.random() < 0.3:
            name += "-" + str(rng.randint(2, 99))
        if name not in used and len(name) <= 60:
            used.add(name)
            return name


def version_series(rng, count):
    """`count` increasing semver strings, mostly patches, some minors, few majors."""
    major, minor, patch = (0, 1, 0) if rng.random() < 0.4 else (1, 0, 0)
    out = []
    for _ in range(count):
        out.append(f"{major}.{minor}.{patch}")
        r = rng.random()
        if r < 0.03:
            major, minor, patch = major + 1, 0, 0
        elif r < 0.20:
            minor, patch = minor + 1, 0
        else:
            patch += 1
    return out


def lognormal_size(rng, median, sigma, lo, hi):
    return int(min(hi, max(lo, median * math.exp(rng.gauss(0, sigma)))))


def readme_text(rng, name, paragraphs):
    out = [f"# {name}\n", words(rng, 12).capitalize() + ".\n", "## Install\n", f"```\nnpm install {name}\n```\n"]
    for i in range(paragraphs):
        out.append(f"## {words(rng, 2).title()}\n")
        out.append(" ".join(words(rng, rng.randint(8, 16)).capitalize() + "." for _ in range(rng.randint(3, 7))) + "\n")
    return "\n".join(out)


def tarinfo(path, size):
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o644
    info.mtime = 499162500  # 1985-10-26T08:15:00Z, as npm pack does
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_tarball(package_json, readme, payload):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        pj = (json.dumps(package_json, indent=2) + "\n").encode()
        for path, data in (
            ("package/package.json", pj),
            ("package/README.md", readme.encode()),
            ("package/index.js", b"'use strict';\nmodule.exports = require('./lib/bundle.js');\n"),
            ("package/lib/bundle.js", payload),
        ):
            tar.addfile(tarinfo(path, len(data)), io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def payload_bytes(rng, size):
    """Bytes that compress a little, like minified JS: random base64 text with some repeats."""
    text_len = max(16, int(size * 1.28))  # base64 text gzips to ~78%
    blob = base64.b64encode(rng.randbytes(text_len * 3 // 4 + 3))[:text_len]
    return b"/*! bundle */\n" + blob + b"\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--quick", action="store_true", help="a small corpus for trying things out")
    args = ap.parse_args()

    if args.quick:
        params = dict(packages=80, huge_versions=[600], big_tarball_packages=1, install_set=40)
    else:
        # Publishing into a package costs Verdaccio (and Airlock) time in proportion to its
        # packument, so loading an n-version package costs O(n^2): 1,500 versions is what a
        # full run can afford. Huge packages carry more metadata per version (as real popular
        # packages do) so their packuments still reach several MB.
        params = dict(packages=1000, huge_versions=[1000, 1200, 1500], big_tarball_packages=4, install_set=300)
    params.update(seed=args.seed, generator=GENERATOR_VERSION, quick=args.quick)

    stamp_path = os.path.join(args.out, "manifest.json")
    if os.path.exists(stamp_path):
        with open(stamp_path) as f:
            if json.load(f).get("params") == params:
                print(f"corpus: up to date in {args.out}")
                return
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(os.path.join(args.out, "packages"))
    os.makedirs(os.path.join(args.out, "tarballs"))

    started = time.time()
    rng = random.Random(params["seed"])
    used = set()
    n = params["packages"]
    names = [make_name(rng, used) for _ in range(n)]

    # Roles. The first len(huge) are huge, then the big-tarball ones, then the install set
    # (leaf packages: no dependencies, so a project depending on all of them resolves from the
    # corpus alone), then ordinary packages.
    huge = names[: len(params["huge_versions"])]
    big = names[len(huge) : len(huge) + params["big_tarball_packages"]]
    leaf_start = len(huge) + len(big)
    leaves = names[leaf_start : leaf_start + params["install_set"]]
    leaf_set = set(leaves)

    packages = []
    total_bytes = 0
    total_versions = 0
    for index, name in enumerate(names):
        if name in huge:
            count = params["huge_versions"][huge.index(name)]
            base_size = lognormal_size(rng, 14_000, 0.5, 2_000, 200_000)
            kind = "huge"
        elif name in big:
            count = rng.randint(5, 8)
            base_size = rng.randint(3_500_000, 5_000_000)
            kind = "big"
        else:
            # 5-50 versions, log-uniform (mean about 20).
            count = int(round(5 * 10 ** rng.random()))
            base_size = lognormal_size(rng, 10_000, 1.2, 1_000, 2_500_000)
            kind = "leaf" if name in leaf_set else "normal"
        versions = version_series(rng, count)
        description = words(rng, rng.randint(6, 14)).capitalize()
        keywords = sorted({rng.choice(WORDS) for _ in range(rng.randint(3, 8))})
        author = {"name": words(rng, 2).title(), "email": f"{rng.choice(WORDS)}@example.com", "url": f"https://example.com/~{rng.choice(WORDS)}"}
        repo = f"https://github.com/{rng.choice(WORDS)}/{name}"
        readme = readme_text(rng, name, rng.randint(2, 8))
        # Candidate dependencies: other corpus packages that are not leaves' concern.
        deps_pool = [x for x in names if x != name]
        version_docs = []
        for i, version in enumerate(versions):
            progress = i / max(1, count - 1)
            size = int(base_size * (0.8 + 0.4 * progress) * rng.uniform(0.95, 1.05))
            size = max(1_000, min(5_000_000, size))
            pj = {
                "name": name,
                "version": version,
                "description": description,
                "main": "index.js",
                "types": "index.d.ts" if rng.random() < 0.5 else None,
                "keywords": keywords,
                "author": author,
                "license": rng.choice(("MIT", "MIT", "ISC", "Apache-2.0", "BSD-3-Clause")),
                "repository": {"type": "git", "url": f"git+{repo}.git"},
                "bugs": {"url": f"{repo}/issues"},
                "homepage": f"{repo}#readme",
                "files": ["index.js", "lib/"],
                "scripts": {"build": "tsc -p .", "test": rng.choice(("jest", "mocha", "tap", "vitest run")), "lint": "eslint ."},
                "engines": {"node": rng.choice((">=12", ">=14", ">=16", ">=18"))},
                "gitHead": hashlib.sha1(f"{name}@{version}".encode()).hexdigest(),
            }
            if pj["types"] is None:
                del pj["types"]
            if kind != "leaf":
                deps = {}
                for dep in rng.sample(deps_pool, rng.randint(0, 8) if kind != "huge" else rng.randint(12, 24)):
                    deps[dep] = f"^{rng.randint(0, 3)}.{rng.randint(0, 9)}.0"
                if deps:
                    pj["dependencies"] = dict(sorted(deps.items()))
                if rng.random() < 0.15:
                    pj["peerDependencies"] = {rng.choice(deps_pool): "*"}
            dev = {d: f"^{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}" for d in rng.sample(DEV_DEPS, rng.randint(3, 12))}
            pj["devDependencies"] = dict(sorted(dev.items()))
            tgz = build_tarball(pj, readme, payload_bytes(rng, size))
            rel = f"tarballs/{name}/{name}-{version}.tgz"
            os.makedirs(os.path.join(args.out, "tarballs", name), exist_ok=True)
            with open(os.path.join(args.out, rel), "wb") as f:
                f.write(tgz)
            version_docs.append(
                {
                    "manifest": pj,
                    "tarball": rel,
                    "size": len(tgz),
                    "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
                    "shasum": hashlib.sha1(tgz).hexdigest(),
                }
            )
            total_bytes += len(tgz)
        total_versions += count
        with open(os.path.join(args.out, "packages", f"{name}.json"), "w") as f:
            json.dump({"name": name, "kind": kind, "readme": readme, "versions": version_docs}, f)
        packages.append({"name": name, "kind": kind, "versions": count, "latest": versions[-1], "bytes": sum(v["size"] for v in version_docs)})
        if (index + 1) % 100 == 0:
            print(f"corpus: {index + 1}/{n} packages, {total_versions} versions, {total_bytes / 1e6:.0f} MB", flush=True)

    # Probes for the GET benchmarks: the biggest huge package, and an ordinary package with a
    # typical number of versions.
    small = next(p["name"] for p in packages if p["kind"] == "normal" and 8 <= p["versions"] <= 12)
    manifest = {
        "params": params,
        "packages": packages,
        "install_set": [{"name": p["name"], "range": "^" + p["latest"]} for p in packages if p["kind"] == "leaf"],
        "small": small,
        "huge": max((p for p in packages if p["kind"] == "huge"), key=lambda p: p["versions"])["name"],
        "total_versions": total_versions,
        "total_tarball_bytes": total_bytes,
    }
    with open(stamp_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(stamp_path + ".tmp", stamp_path)
    print(f"corpus: {n} packages, {total_versions} versions, {total_bytes / 1e6:.0f} MB of tarballs in {time.time() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
