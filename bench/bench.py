#!/usr/bin/env python3
"""Airlock vs Verdaccio vs nginx: load the corpus, measure, write BENCHMARKS.md.

Driven by bench/run, which installs the tools, builds Airlock and generates the corpus first.
Phases (each a subcommand; `all` runs load, measure and report):
  load     start Airlock and Verdaccio on empty data dirs, publish the corpus into both through
           their HTTP APIs, export Airlock's packuments (full and abbreviated, tarball URLs
           pointing at nginx) and the tarballs into nginx's static tree
  measure  start the three servers fresh and measure them in one run -> results.json
  report   results.json -> BENCHMARKS.md
Only the standard library is used.
"""

import argparse
import base64
import concurrent.futures
import datetime
import gzip
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LUA = os.path.join(HERE, "wrk.lua")
CORGI = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
FULL = "application/json"
SERVERS = ("airlock", "verdaccio", "nginx")
# Ports with the same number of digits, so a packument exported with nginx's port in its
# tarball URLs has exactly the length of Airlock's own.
PORTS = {"airlock": 14873, "verdaccio": 24873, "nginx": 34873}
USER, PASSWORD, EMAIL = "bench", "bench-password-1", "bench@example.com"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Paths and settings


class Ctx:
    def __init__(self, args):
        self.quick = args.quick
        self.out = os.path.abspath(args.out or os.path.join(HERE, "out", "quick" if args.quick else "full"))
        self.corpus = os.path.join(self.out, "corpus")
        self.airlock_bin = args.airlock_bin
        self.airlock_rev = args.airlock_rev or "(binary built outside bench/run)"
        self.tools = os.path.join(HERE, ".tools")
        self.node = os.path.join(self.tools, "node22", "node_modules", "node", "bin", "node")
        self.verdaccio_js = os.path.join(self.tools, "verdaccio", "node_modules", "verdaccio", "bin", "verdaccio")
        self.airlock_dir = os.path.join(self.out, "airlock-data")
        self.verdaccio_dir = os.path.join(self.out, "verdaccio")
        self.nginx_dir = os.path.join(self.out, "nginx")
        self.logs = os.path.join(self.out, "logs")
        self.state_path = os.path.join(self.out, "state.json")
        self.results_path = os.path.join(self.out, "results.json")
        self.report_path = args.report or (os.path.join(self.out, "BENCHMARKS.md") if args.quick else os.path.join(REPO, "BENCHMARKS.md"))
        self.duration = args.duration or (2 if args.quick else 5)
        self.max_duration = 10 if args.quick else 20
        self.install_reps = args.install_reps or (1 if args.quick else 5)
        self.rounds = args.rounds or (1 if args.quick else 3)
        os.makedirs(self.logs, exist_ok=True)

    def manifest(self):
        with open(os.path.join(self.corpus, "manifest.json")) as f:
            return json.load(f)

    def state(self):
        if os.path.exists(self.state_path):
            with open(self.state_path) as f:
                return json.load(f)
        return {}

    def save_state(self, state):
        with open(self.state_path, "w") as f:
            json.dump(state, f, indent=1)


# ---------------------------------------------------------------------------------------------
# HTTP helpers


def request(port, method, path, headers=None, body=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class KeepAlive:
    """One persistent connection; reconnects once if the server closed it."""

    def __init__(self, port, timeout=300):
        self.port, self.timeout, self.conn = port, timeout, None

    def request(self, method, path, headers, body=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# ---------------------------------------------------------------------------------------------
# Servers


def tree_pids(pid):
    """pid and its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_kb(pid):
    """(VmRSS, VmHWM) summed over the process tree, in kB."""
    rss = hwm = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    return rss, hwm


def cpu_seconds(pid):
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


class Server:
    def __init__(self, ctx, name):
        self.ctx, self.name, self.port = ctx, name, PORTS[name]
        self.proc = None

    def command(self):
        ctx = self.ctx
        if self.name == "airlock":
            return [ctx.airlock_bin, "--data-dir", ctx.airlock_dir, "serve", "--listen", f"127.0.0.1:{self.port}"]
        if self.name == "verdaccio":
            return [ctx.node, ctx.verdaccio_js, "--config", os.path.join(ctx.verdaccio_dir, "config.yaml"), "--listen", f"127.0.0.1:{self.port}"]
        return ["nginx", "-p", ctx.nginx_dir, "-c", os.path.join(ctx.nginx_dir, "nginx.conf"), "-g", "daemon off;"]

    def start(self, probe_path):
        """Starts the server; returns seconds from spawn to the first 200 on probe_path."""
        if not port_free(self.port):
            raise SystemExit(f"port {self.port} is in use; is an old {self.name} still running?")
        logf = open(os.path.join(self.ctx.logs, f"{self.name}.log"), "ab")
        env = dict(os.environ)
        if self.name == "verdaccio":
            env["PATH"] = os.path.dirname(self.ctx.node) + ":" + env["PATH"]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = t0 + 120
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}; see {logf.name}")
            try:
                status, _, _ = request(self.port, "GET", probe_path, {"Accept": FULL}, timeout=10)
                if status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.002)
        raise SystemExit(f"{self.name} did not answer within 120 s; see {logf.name}")

    def wait_port(self):
        """For the load phase: wait until the port accepts connections."""
        logf = open(os.path.join(self.ctx.logs, f"{self.name}.log"), "ab")
        env = dict(os.environ)
        if self.name == "verdaccio":
            env["PATH"] = os.path.dirname(self.ctx.node) + ":" + env["PATH"]
        if not port_free(self.port):
            raise SystemExit(f"port {self.port} is in use; is an old {self.name} still running?")
        self.proc = subprocess.Popen(self.command(), stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        for _ in range(6000):
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}; see {logf.name}")
            if not port_free(self.port):
                return
            time.sleep(0.02)
        raise SystemExit(f"{self.name} did not open its port")

    def memory(self):
        return memory_kb(self.proc.pid)

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if self.name == "nginx" else signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


# ---------------------------------------------------------------------------------------------
# Setup of the three servers


def write_verdaccio_config(ctx):
    os.makedirs(ctx.verdaccio_dir, exist_ok=True)
    d = ctx.verdaccio_dir
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write(
            f"""# Written by bench/bench.py. A plain local-only Verdaccio: no uplinks.
storage: {d}/storage
auth:
  htpasswd:
    file: {d}/htpasswd
    max_users: 10
security:
  api:
    jwt:
      sign:
        expiresIn: 30d
uplinks: {{}}
packages:
  '**':
    access: $all
    publish: $authenticated
    unpublish: $authenticated
max_body_size: 200mb
server:
  keepAliveTimeout: 60
log: {{ type: stdout, format: pretty, level: warn }}
"""
        )


def write_nginx_config(ctx):
    d = ctx.nginx_dir
    for sub in ("logs", "tmp", "tree/packuments", "tree/tarballs"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(
            f"""# Written by bench/bench.py: the same packument and tarball bytes as static files.
user root;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  types {{ application/json json; application/octet-stream tgz; }}
  # Packuments are stored next to a gzip of themselves (what a CDN or a tuned server does).
  gzip_static on;
  map $http_accept $representation {{
    default full;
    "~application/vnd\\.npm\\.install-v1\\+json" abbr;
  }}
  server {{
    listen 127.0.0.1:{PORTS['nginx']};
    root {d}/tree;
    location ~ ^/(?<pkg>[^/]+)/-/(?<file>[^/]+\\.tgz)$ {{
      try_files /tarballs/$pkg/$file =404;
    }}
    location / {{
      add_header Vary "Accept, Accept-Encoding";
      try_files /packuments$uri.$representation.json =404;
    }}
  }}
}}
"""
        )


def airlock_cli(ctx, *args, stdin=None):
    return subprocess.run([ctx.airlock_bin, "--data-dir", ctx.airlock_dir, *args], input=stdin, capture_output=True, text=True, check=True).stdout.strip()


def version_body(name, doc, version_doc, port):
    manifest = dict(version_doc["manifest"])
    version = manifest["version"]
    with open(version_doc["path"], "rb") as f:
        tgz = f.read()
    manifest.update(
        _id=f"{name}@{version}",
        _nodeVersion="22.23.3",
        _npmVersion="11.19.1",
        readme=doc["readme"],
        readmeFilename="README.md",
        dist={
            "integrity": version_doc["integrity"],
            "shasum": version_doc["shasum"],
            "tarball": f"http://127.0.0.1:{port}/{name}/-/{name}-{version}.tgz",
        },
    )
    body = {
        "_id": name,
        "name": name,
        "description": manifest.get("description", ""),
        "dist-tags": {"latest": version},
        "versions": {version: manifest},
        "access": None,
        "_attachments": {
            f"{name}-{version}.tgz": {"content_type": "application/octet-stream", "data": base64.b64encode(tgz).decode(), "length": len(tgz)}
        },
        "readme": doc["readme"],
    }
    return json.dumps(body).encode()


def publish_corpus(ctx, server, token, names, workers):
    """Publishes every version of every package (in version order per package) through PUT."""
    started = time.time()
    lock = threading.Lock()
    done = {"versions": 0, "packages": 0}
    total = sum(1 for _ in names)

    def one_package(name):
        with open(os.path.join(ctx.corpus, "packages", f"{name}.json")) as f:
            doc = json.load(f)
        client = KeepAlive(server.port)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            for v in doc["versions"]:
                v["path"] = os.path.join(ctx.corpus, v["tarball"])
                body = version_body(name, doc, v, server.port)
                status, data = client.request("PUT", "/" + name, dict(headers, **{"Content-Length": str(len(body))}), body)
                if status not in (200, 201):
                    raise RuntimeError(f"{server.name}: PUT {name}@{v['manifest']['version']} -> {status} {data[:300]!r}")
                with lock:
                    done["versions"] += 1
        finally:
            client.close()
        with lock:
            done["packages"] += 1
            if done["packages"] % 100 == 0:
                log(f"  {server.name}: {done['packages']}/{total} packages, {done['versions']} versions, {time.time() - started:.0f} s")

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for fut in [pool.submit(one_package, n) for n in names]:
            fut.result()
    elapsed = time.time() - started
    log(f"  {server.name}: loaded {done['versions']} versions of {done['packages']} packages in {elapsed:.0f} s ({done['versions'] / elapsed:.0f}/s)")
    return elapsed


def export_nginx_tree(ctx, manifest):
    """nginx's tree: Airlock's own packument bytes (asked for with nginx's Host, so the tarball
    URLs point at nginx), each with a .gz beside it, and the corpus tarballs."""
    tree = os.path.join(ctx.nginx_dir, "tree")
    host = f"127.0.0.1:{PORTS['nginx']}"
    client = KeepAlive(PORTS["airlock"])
    for p in manifest["packages"]:
        name = p["name"]
        for rep, accept in (("full", FULL), ("abbr", CORGI)):
            status, body = client.request("GET", "/" + name, {"Host": host, "Accept": accept})
            if status != 200:
                raise RuntimeError(f"airlock: GET {name} ({rep}) -> {status}")
            path = os.path.join(tree, "packuments", f"{name}.{rep}.json")
            with open(path, "wb") as f:
                f.write(body)
            with open(path + ".gz", "wb") as f:
                f.write(gzip.compress(body, compresslevel=6, mtime=0))
        src = os.path.join(ctx.corpus, "tarballs", name)
        dst = os.path.join(tree, "tarballs", name)
        if os.path.exists(dst):
            shutil.rmtree(dst)
        os.makedirs(dst)
        for file in os.listdir(src):
            try:
                os.link(os.path.join(src, file), os.path.join(dst, file))
            except OSError:
                shutil.copyfile(os.path.join(src, file), os.path.join(dst, file))
    client.close()
    # Sanity: Airlock serves the corpus bytes for a tarball.
    p = manifest["packages"][0]
    status, _, body = request(PORTS["airlock"], "GET", f"/{p['name']}/-/{p['name']}-{p['latest']}.tgz")
    with open(os.path.join(ctx.corpus, "tarballs", p["name"], f"{p['name']}-{p['latest']}.tgz"), "rb") as f:
        if status != 200 or body != f.read():
            raise RuntimeError("airlock served different tarball bytes than the corpus holds")


def cmd_load(ctx, reload_verdaccio=False):
    """Airlock is loaded afresh whenever its binary changed (its code is what changes between
    runs); Verdaccio's load is kept while the corpus is the same, since it is slow
    (O(versions^2) for the huge packages) and Verdaccio does not change. nginx's tree is
    exported from the new Airlock."""
    manifest = ctx.manifest()
    corpus_id = manifest["params"]
    state = ctx.state()
    airlock_stamp = os.path.join(ctx.out, "airlock-loaded.json")
    airlock_id = {"corpus": corpus_id, "binary_sha256": file_sha256(ctx.airlock_bin)}
    if not reload_verdaccio and os.path.exists(airlock_stamp) and os.path.exists(os.path.join(ctx.out, "verdaccio-loaded.json")):
        with open(airlock_stamp) as f:
            if json.load(f) == airlock_id:
                log("load: Airlock (same binary), nginx and Verdaccio already hold this corpus (bench/run --reload loads them again)")
                return
    if os.path.exists(airlock_stamp):
        os.remove(airlock_stamp)
    stamp = os.path.join(ctx.out, "verdaccio-loaded.json")
    reuse_verdaccio = False
    if not reload_verdaccio and os.path.exists(stamp) and state.get("verdaccio_token"):
        with open(stamp) as f:
            reuse_verdaccio = json.load(f).get("corpus") == corpus_id
    if os.path.exists(stamp) and not reuse_verdaccio:
        os.remove(stamp)
    for d in [ctx.airlock_dir, ctx.nginx_dir] + ([] if reuse_verdaccio else [ctx.verdaccio_dir]):
        if os.path.exists(d):
            shutil.rmtree(d)
    write_verdaccio_config(ctx)
    write_nginx_config(ctx)
    state.setdefault("load_seconds", {})

    log("load: creating the Airlock user and token")
    airlock_cli(ctx, "user", "add", USER, "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    state["airlock_token"] = airlock_cli(ctx, "token", "create", USER)

    airlock, verdaccio = Server(ctx, "airlock"), Server(ctx, "verdaccio")
    # Huge packages first: they are sequential by nature and bound the total time.
    names = [p["name"] for p in sorted(manifest["packages"], key=lambda p: -p["versions"])]
    try:
        airlock.wait_port()
        jobs = {"airlock": (airlock, state["airlock_token"])}
        if reuse_verdaccio:
            log("load: Verdaccio already holds this corpus (bench/run --reload publishes it again)")
        else:
            verdaccio.wait_port()
            time.sleep(0.5)
            body = json.dumps({"_id": f"org.couchdb.user:{USER}", "name": USER, "password": PASSWORD, "email": EMAIL, "type": "user", "roles": [], "date": "2024-01-01T00:00:00.000Z"})
            status, _, data = request(verdaccio.port, "PUT", f"/-/user/org.couchdb.user:{USER}", {"Content-Type": "application/json"}, body)
            if status not in (200, 201):
                raise SystemExit(f"verdaccio: adduser -> {status} {data!r}")
            state["verdaccio_token"] = json.loads(data)["token"]
            jobs["verdaccio"] = (verdaccio, state["verdaccio_token"])
        ctx.save_state(state)
        log(f"load: publishing {manifest['total_versions']:,} versions of {len(names):,} packages into {' and '.join(jobs)}" + (" (in parallel)" if len(jobs) > 1 else ""))
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            futures = {name: pool.submit(publish_corpus, ctx, server, token, names, 4) for name, (server, token) in jobs.items()}
            for name, fut in futures.items():
                state["load_seconds"][name] = fut.result()
        log("load: exporting Airlock's packuments and the tarballs into nginx's tree")
        export_nginx_tree(ctx, manifest)
    finally:
        airlock.stop()
        verdaccio.stop()
    ctx.save_state(state)
    if not reuse_verdaccio:
        with open(stamp, "w") as f:
            json.dump({"corpus": corpus_id, "at": time.time()}, f)
    with open(airlock_stamp, "w") as f:
        json.dump(airlock_id, f)
    log("load: done")


def file_sha256(path):
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Measurements


def cpu_times():
    """The machine's CPU time split, from /proc/stat: (steal, total) in ticks."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user).
    return fields[7], sum(fields[:8])


def wait_quiet(ctx, limit_s=60.0):
    """Waits until every server has worked off earlier load before the next measurement.
    Verdaccio goes on answering the requests wrk abandoned at the end of a run (a huge
    packument at 64 connections keeps it busy for many seconds), which would otherwise land on
    whichever server is measured next. Quiet: under 6% of a core over half a second."""
    servers = getattr(ctx, "servers", None) or {}
    start = time.monotonic()
    busy = []
    while time.monotonic() - start < limit_s:
        before = {n: s.cpu() for n, s in servers.items()}
        time.sleep(0.5)
        busy = [n for n, s in servers.items() if s.cpu() - before[n] > 0.03]
        if not busy:
            break
    waited = time.monotonic() - start
    if waited > 1.5:
        still = f"; still busy: {', '.join(busy)}" if busy else ""
        log(f"  waited {waited:.1f} s for the servers to go quiet{still}")
    ctx.quiet_waits.append(round(waited, 1))


def wrk_all(ctx, servers, paths, conc, accept=None, encoding=None, inm=None):
    """wrk against every server, `ctx.rounds` times, rotating which server goes first; each
    server's median round (by req/s) is its figure, so a burst of background work on a shared
    machine moves one round, not the result. `inm`: If-None-Match per server name (a server
    without one is skipped and gets None)."""
    names = [n for n in servers if inm is None or inm.get(n) is not None]
    rounds = {n: [] for n in names}
    for r in range(ctx.rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            run = run_wrk(ctx, servers[n].port, paths, conc, accept=accept, encoding=encoding, inm=inm[n] if inm else None)
            rounds[n].append(run)
    result = {n: None for n in servers}
    for n, runs in rounds.items():
        median = sorted(runs, key=lambda run: run["rps"])[len(runs) // 2]
        # Latency percentiles are medians over the rounds too, each on its own: one stalled
        # round (a burst of CPU steal) must not decide a p99.
        latency = {k: statistics.median(run[k] for run in runs) for k in ("p50_us", "p90_us", "p99_us")}
        result[n] = dict(median, **latency, rounds_rps=[round(run["rps"], 1) for run in runs],
                         rounds_p99_us=[run["p99_us"] for run in runs])
    return result


def run_wrk(ctx, port, paths, conc, accept=None, encoding=None, inm=None, duration=None):
    wait_quiet(ctx)
    paths_file = os.path.join(ctx.out, "wrk-paths.txt")
    with open(paths_file, "w") as f:
        f.write("\n".join(paths) + "\n")
    env = dict(os.environ, BENCH_PATHS=paths_file, BENCH_ACCEPT=accept or "", BENCH_ENCODING=encoding or "", BENCH_INM=inm or "")
    duration = duration or ctx.duration
    threads = 1 if conc == 1 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{conc}", f"-d{duration}s", "--timeout", "60s", "--latency", "-s", LUA, f"http://127.0.0.1:{port}{paths[0]}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 120)
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout} {out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    r["duration_s"] = r["duration_us"] / 1e6
    r["rps"] = r["requests"] / r["duration_s"]
    r["mbps"] = r["bytes"] / r["duration_s"] / 1e6
    r["errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    # Slow servers complete too few requests in the short run for stable percentiles: rerun longer.
    if r["requests"] < max(50, 2 * conc) and duration < ctx.max_duration:
        return run_wrk(ctx, port, paths, conc, accept, encoding, inm, ctx.max_duration)
    return r


class Results:
    def __init__(self):
        self.rows = []
        self.index = {}

    def add(self, key, group, label, unit, values, better="higher", target=None, detail=None):
        row = {"key": key, "group": group, "label": label, "unit": unit, "values": values, "better": better, "target": target, "detail": detail or {}}
        self.rows.append(row)
        self.index[key] = row
        shown = "  ".join(f"{s}={values.get(s) if values.get(s) is None else round(values[s], 2)}" for s in SERVERS)
        log(f"  {label} [{unit}]: {shown}")


def etag_for(port, path, headers):
    status, h, body = request(port, "GET", path, headers)
    if status != 200:
        raise RuntimeError(f"GET {path} on port {port} -> {status}")
    etag = h.get("etag")
    if not etag:
        return None, len(body)
    status, _, _ = request(port, "GET", path, dict(headers, **{"If-None-Match": etag}))
    return (etag if status == 304 else None), len(body)


def npm_env(ctx):
    env = dict(os.environ)
    for k in list(env):
        if k.lower().startswith("npm_config_"):
            del env[k]
    return env


def npm_install(ctx, server, rep):
    wait_quiet(ctx)
    manifest = ctx.manifest()
    work = os.path.join(ctx.out, "install", f"{server.name}-{rep}")
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    deps = {d["name"]: d["range"] for d in manifest["install_set"]}
    with open(os.path.join(work, "package.json"), "w") as f:
        json.dump({"name": "bench-install-project", "version": "1.0.0", "private": True, "dependencies": deps}, f, indent=1)
    registry = f"http://127.0.0.1:{server.port}/"
    with open(os.path.join(work, ".npmrc"), "w") as f:
        f.write(f"registry={registry}\naudit=false\nfund=false\nupdate-notifier=false\n")
    userconfig = os.path.join(work, "userconfig.npmrc")
    with open(userconfig, "w") as f:
        f.write("update-notifier=false\n")
    cache = os.path.join(work, "cache")
    cmd = ["npm", "install", "--registry", registry, "--cache", cache, "--userconfig", userconfig, "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=work, env=npm_env(ctx), capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"npm install from {server.name} failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    installed = [n for n in os.listdir(os.path.join(work, "node_modules")) if not n.startswith(".")]
    if len(installed) != len(deps):
        raise RuntimeError(f"npm install from {server.name}: {len(installed)} packages installed, {len(deps)} expected")
    shutil.rmtree(work)
    return elapsed


def probe_tarball(name, version, size_hint):
    import hashlib
    import io
    import tarfile

    pj = json.dumps({"name": name, "version": version, "description": "publish probe", "main": "index.js", "license": "MIT"}, indent=2).encode()
    payload = (b"module.exports = %d;\n" % size_hint) + b"//" + b"x" * size_hint + b"\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in (("package/package.json", pj), ("package/index.js", payload)):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 499162500
            tar.addfile(info, io.BytesIO(data))
    tgz = gzip.compress(raw.getvalue(), mtime=0)
    return tgz, "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(), hashlib.sha1(tgz).hexdigest()


def raw_put(server, token, name, version, tag="latest", readme="probe"):
    tgz, integrity, shasum = probe_tarball(name, version, 8000)
    manifest = {
        "name": name, "version": version, "description": "publish probe", "main": "index.js", "license": "MIT",
        "_id": f"{name}@{version}", "_nodeVersion": "22.23.3", "_npmVersion": "11.19.1", "readme": readme, "readmeFilename": "README.md",
        "dist": {"integrity": integrity, "shasum": shasum, "tarball": f"http://127.0.0.1:{server.port}/{name}/-/{name}-{version}.tgz"},
    }
    body = json.dumps({
        "_id": name, "name": name, "description": "publish probe", "dist-tags": {tag: version}, "versions": {version: manifest}, "access": None,
        "_attachments": {f"{name}-{version}.tgz": {"content_type": "application/octet-stream", "data": base64.b64encode(tgz).decode(), "length": len(tgz)}},
    }).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "Content-Length": str(len(body))}
    t0 = time.perf_counter()
    status, _, data = request(server.port, "PUT", "/" + name, headers, body)
    elapsed = time.perf_counter() - t0
    if status not in (200, 201):
        raise RuntimeError(f"{server.name}: raw PUT {name}@{version} -> {status} {data[:300]!r}")
    return elapsed


def npm_publish(ctx, server, token, name, version):
    # The cache must not live inside the package directory, or npm packs it.
    base = os.path.join(ctx.out, "publish", server.name)
    work = os.path.join(base, "pkg")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "package.json"), "w") as f:
        json.dump({"name": name, "version": version, "description": "npm publish probe", "main": "index.js", "license": "MIT"}, f, indent=1)
    with open(os.path.join(work, "index.js"), "w") as f:
        f.write("module.exports = 42;\n")
    with open(os.path.join(work, "README.md"), "w") as f:
        f.write(f"# {name}\n")
    userconfig = os.path.join(base, "userconfig.npmrc")
    with open(userconfig, "w") as f:
        f.write(f"//127.0.0.1:{server.port}/:_authToken={token}\nupdate-notifier=false\nfund=false\naudit=false\n")
    registry = f"http://127.0.0.1:{server.port}/"
    cmd = ["npm", "publish", "--registry", registry, "--userconfig", userconfig, "--cache", os.path.join(base, "cache"), "--no-audit", "--loglevel=error", "--ignore-scripts"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=work, env=npm_env(ctx), capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"npm publish to {server.name} failed: {out.stdout[-1500:]} {out.stderr[-1500:]}")
    return elapsed


def cmd_measure(ctx):
    # The machine may be shared: ask for a head start over background work (root only). The
    # servers, wrk and npm inherit it, so all three servers get the same treatment.
    try:
        os.nice(-10)
    except OSError:
        pass
    manifest = ctx.manifest()
    state = ctx.state()
    tokens = {"airlock": state["airlock_token"], "verdaccio": state["verdaccio_token"]}
    small, huge = manifest["small"], manifest["huge"]
    # Publishing into a huge package: the second largest when there is one, so the GET probe's
    # packument stays as loaded (Verdaccio's load is reused between runs).
    huge_names = [p["name"] for p in sorted(manifest["packages"], key=lambda p: -p["versions"]) if p["kind"] == "huge"]
    publish_target = huge_names[1] if len(huge_names) > 1 else huge_names[0]
    servers = {name: Server(ctx, name) for name in SERVERS}
    ctx.servers = servers
    ctx.quiet_waits = []
    res = Results()
    meta = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    run_id = int(time.time())
    try:
        # Start-up: one server at a time, nothing else running.
        log("measure: starting the servers (time to the first answered packument GET)")
        startup = {}
        for name, server in servers.items():
            startup[name] = server.start("/" + small) * 1000
        time.sleep(3)
        idle = {name: s.memory()[0] / 1024 for name, s in servers.items()}
        res.add("startup", "Process", "Start to first answered request", "ms", startup, better="lower")
        res.add("rss_idle", "Process", "RSS idle (after start and one request)", "MB", idle, better="lower", target={"kind": "abs_max", "value": 30, "text": "≤ 30 MB"})
        cpu0 = {name: s.cpu() for name, s in servers.items()}
        steal0, total0 = cpu_times()
        phases = meta["rss_by_phase"] = []

        def snapshot(phase):
            mem = {name: s.memory() for name, s in servers.items()}
            phases.append({"phase": phase, "rss": {n: m[0] / 1024 for n, m in mem.items()}, "hwm": {n: m[1] / 1024 for n, m in mem.items()}})

        snapshot("idle")

        # Sizes of what each server returns for the probes.
        sizes = {}
        for pkg_label, pkg in (("small", small), ("huge", huge)):
            for rep, accept in (("full", FULL), ("abbr", CORGI)):
                for name, server in servers.items():
                    status, h, body = request(server.port, "GET", "/" + pkg, {"Accept": accept})
                    sizes[f"{pkg_label}_{rep}_{name}"] = len(body)
                    status, h, gz = request(server.port, "GET", "/" + pkg, {"Accept": accept, "Accept-Encoding": "gzip"})
                    sizes[f"{pkg_label}_{rep}_{name}_gzip"] = len(gz) if h.get("content-encoding") == "gzip" else None
        meta["sizes"] = sizes

        # Packument GETs.
        log("measure: packument GETs")
        for pkg_label, pkg in (("small", small), ("huge", huge)):
            for rep, accept in (("full", FULL), ("abbr", CORGI)):
                # npm sends Accept-Encoding: gzip; identity at every concurrency, gzip at 16
                # (keeps a full run within about half an hour).
                for enc, concs in ((None, (1, 16, 64)), ("gzip", (16,))):
                    for conc in concs:
                        runs = wrk_all(ctx, servers, ["/" + pkg], conc, accept=accept, encoding=enc)
                        enc_label = "gzip" if enc else "identity"
                        base = f"pk_{pkg_label}_{rep}_{enc_label}_c{conc}"
                        title = f"{rep} packument, {pkg_label} ({sizes[f'{pkg_label}_{rep}_airlock'] / 1024:,.0f} KB), {enc_label}, c={conc}"
                        detail = {n: {k: r[k] for k in ("requests", "errors", "duration_s", "bytes", "rounds_rps")} for n, r in runs.items()}
                        res.add(base + "_rps", "Packument GET", title, "req/s", {n: r["rps"] for n, r in runs.items()}, target={"kind": "packument"}, detail=detail)
                        res.add(base + "_p50", "Packument GET", title, "p50 ms", {n: r["p50_us"] / 1000 for n, r in runs.items()}, better="lower")
                        target = {"kind": "p99_vs_verdaccio_p50", "ref": base + "_p50"} if conc > 1 else None
                        res.add(base + "_p99", "Packument GET", title, "p99 ms", {n: r["p99_us"] / 1000 for n, r in runs.items()}, better="lower", target=target)

        # Revalidation: If-None-Match with each server's own ETag (npm's headers: full, gzip).
        snapshot("packument GETs")
        log("measure: revalidation (If-None-Match -> 304)")
        for pkg_label, pkg in (("small", small), ("huge", huge)):
            headers = {"Accept": FULL, "Accept-Encoding": "gzip"}
            etags = {name: etag_for(s.port, "/" + pkg, headers)[0] for name, s in servers.items()}
            runs = wrk_all(ctx, servers, ["/" + pkg], 16, accept=FULL, encoding="gzip", inm=etags)
            title = f"revalidation 304, {pkg_label} full packument, c=16"
            res.add(f"reval_{pkg_label}_rps", "Revalidation", title, "req/s", {n: (r["rps"] if r else None) for n, r in runs.items()})
            res.add(f"reval_{pkg_label}_p99", "Revalidation", title, "p99 ms", {n: (r["p99_us"] / 1000 if r else None) for n, r in runs.items()}, better="lower")
            meta[f"reval_{pkg_label}_bytes_per_response"] = {n: (r["bytes"] / max(1, r["requests"]) if r else None) for n, r in runs.items()}

        # Tarballs: the install set's latest tarballs (typical sizes), and the biggest ones.
        snapshot("revalidation")
        log("measure: tarball GETs")
        all_tarballs = []
        for p in manifest["packages"]:
            all_tarballs.append((p["name"], p["latest"]))
        typical = [f"/{n}/-/{n}-{v}.tgz" for n, v in all_tarballs[:: max(1, len(all_tarballs) // 200)]]
        big = []
        for p in manifest["packages"]:
            if p["kind"] == "big":
                with open(os.path.join(ctx.corpus, "packages", p["name"] + ".json")) as f:
                    big += [f"/{p['name']}/-/{p['name']}-{v['manifest']['version']}.tgz" for v in json.load(f)["versions"]]
        for label, paths in (("typical (latest of every package)", typical), ("large (3.5-5 MB)", big)):
            for conc in (1, 16):
                for name, s in servers.items():
                    status, _, _ = request(s.port, "GET", paths[0])
                    if status != 200:
                        raise RuntimeError(f"{name}: GET {paths[0]} -> {status}")
                runs = wrk_all(ctx, servers, paths, conc)
                key = f"tgz_{'typical' if label.startswith('typical') else 'large'}_c{conc}"
                title = f"tarball GET, {label}, {len(paths)} files, c={conc}"
                detail = {n: {k: r[k] for k in ("requests", "errors", "duration_s", "bytes", "rounds_rps")} for n, r in runs.items()}
                res.add(key + "_mbps", "Tarball GET", title, "MB/s", {n: r["mbps"] for n, r in runs.items()}, target={"kind": "tarball"}, detail=detail)
                res.add(key + "_rps", "Tarball GET", title, "req/s", {n: r["rps"] for n, r in runs.items()})
                res.add(key + "_p50", "Tarball GET", title, "p50 ms", {n: r["p50_us"] / 1000 for n, r in runs.items()}, better="lower")

        # npm install, cold cache, interleaved so drift hits all servers alike.
        snapshot("tarball GETs")
        log(f"measure: npm install of {len(manifest['install_set'])} dependencies, cold cache, {ctx.install_reps} run(s) per server")
        times = {name: [] for name in SERVERS}
        for rep in range(ctx.install_reps):
            k = rep % len(SERVERS)
            for name in SERVERS[k:] + SERVERS[:k]:
                times[name].append(npm_install(ctx, servers[name], rep))
                log(f"  npm install from {name}: {times[name][-1]:.2f} s")
        res.add("npm_install", "npm install", f"cold-cache npm install, {len(manifest['install_set'])} deps (median of {ctx.install_reps})", "s",
                {n: statistics.median(t) for n, t in times.items()}, better="lower", target={"kind": "install"}, detail={"all": times})

        # Publishing (nginx cannot).
        snapshot("npm install")
        log("measure: publish latency")
        raw, raw_huge, npm_pub = {}, {}, {}
        for name in ("airlock", "verdaccio"):
            s = servers[name]
            try:
                probe = f"bench-raw-probe-{run_id}"
                raw_put(s, tokens[name], probe, "1.0.0")  # creates the package (not timed)
                raw[name] = statistics.median(raw_put(s, tokens[name], probe, f"1.0.{i}") for i in range(1, 11))
                raw_huge[name] = statistics.median(
                    raw_put(s, tokens[name], publish_target, f"{9000 + i}.0.0-r{run_id}", tag="bench") for i in range(3)
                )
                probe = f"bench-npm-probe-{run_id}"
                npm_publish(ctx, s, tokens[name], probe, "1.0.0")  # creates the package (not timed)
                npm_pub[name] = statistics.median(npm_publish(ctx, s, tokens[name], probe, f"1.0.{i}") for i in range(1, 4))
            except Exception as e:  # noqa: BLE001 - one failed figure must not lose the run
                log(f"  publish on {name} FAILED: {e}")
                meta.setdefault("failures", []).append(f"publish on {name}: {e}")
        res.add("publish_raw", "Publish", "raw PUT of a new version (8 KB tarball), median of 10", "ms", {n: v * 1000 for n, v in raw.items()}, better="lower")
        res.add("publish_raw_huge", "Publish", f"raw PUT of a new version into a huge package ({manifest_versions(manifest, publish_target)} versions), median of 3", "ms", {n: v * 1000 for n, v in raw_huge.items()}, better="lower")
        res.add("publish_npm", "Publish", "`npm publish` wall time, new version, median of 3", "s", npm_pub, better="lower")

        snapshot("publish")
        peak = {name: s.memory()[1] / 1024 for name, s in servers.items()}
        res.add("rss_peak", "Process", "RSS peak (VmHWM over the whole run)", "MB", peak, better="lower", target={"kind": "rss_peak"})
        meta["cpu_seconds"] = {name: s.cpu() - cpu0[name] for name, s in servers.items()}
        steal1, total1 = cpu_times()
        meta["cpu_steal_percent"] = 100 * (steal1 - steal0) / max(1, total1 - total0)
    finally:
        for s in servers.values():
            s.stop()
    meta["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta["machine"] = machine_info(ctx)
    meta["corpus"] = {
        "packages": len(manifest["packages"]),
        "versions": manifest["total_versions"],
        "tarball_bytes": manifest["total_tarball_bytes"],
        "huge": {"name": huge, "versions": manifest_versions(manifest, huge)},
        "small": {"name": small, "versions": manifest_versions(manifest, small)},
        "huge_packages": [p["versions"] for p in manifest["packages"] if p["kind"] == "huge"],
        "install_set": len(manifest["install_set"]),
        "quick": manifest["params"]["quick"],
        "seed": manifest["params"]["seed"],
    }
    meta["load_seconds"] = state.get("load_seconds")
    meta["durations"] = {"wrk_seconds": ctx.duration, "wrk_max_seconds": ctx.max_duration, "rounds": ctx.rounds,
                         "install_reps": ctx.install_reps, "quiet_waits_s": sum(ctx.quiet_waits), "quiet_waits_max_s": max(ctx.quiet_waits, default=0)}
    with open(ctx.results_path, "w") as f:
        json.dump({"meta": meta, "rows": res.rows}, f, indent=1)
    log(f"measure: results in {ctx.results_path}")


def manifest_versions(manifest, name):
    return next(p["versions"] for p in manifest["packages"] if p["name"] == name)


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=True, timeout=30).stdout.strip() or subprocess.run(cmd, capture_output=True, text=True, shell=True, timeout=30).stderr.strip()
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def machine_info(ctx):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "airlock": ctx.airlock_rev,
        "verdaccio": json.load(open(os.path.join(ctx.tools, "verdaccio", "node_modules", "verdaccio", "package.json")))["version"],
        "verdaccio_node": sh(f"{ctx.node} --version"),
        "nginx": sh("nginx -v 2>&1").replace("nginx version: ", ""),
        "wrk": sh("wrk -v 2>&1 | head -1"),
        "npm": sh("npm --version") + " on node " + sh("node --version"),
    }


# ---------------------------------------------------------------------------------------------
# Report


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, unit):
    if v is None:
        return "—"
    if unit in ("req/s", "MB/s"):
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_ratio(r):
    if r is None:
        return "—"
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def judge(row, index):
    """(target text, met?) for a row, or (None, None)."""
    t = row["target"]
    if not t:
        return None, None
    v = row["values"]
    a, vd, ng = v.get("airlock"), v.get("verdaccio"), v.get("nginx")
    kind = t["kind"]
    if kind == "packument":
        rv, rn = ratio(a, vd), ratio(a, ng)
        if rv is None or rn is None:
            return "≥ 10× V and ≥ 0.5× N", None
        return "≥ 10× V and ≥ 0.5× N", rv >= 10 and rn >= 0.5
    if kind == "p99_vs_verdaccio_p50":
        ref = index[t["ref"]]["values"].get("verdaccio")
        if a is None or ref is None:
            return "≤ V p50", None
        return f"≤ V p50 ({fmt(ref, 'ms')} ms)", a <= ref
    if kind == "tarball":
        rn = ratio(a, ng)
        return "≥ 0.7× N", (rn is not None and rn >= 0.7)
    if kind == "install":
        return "≤ 1.1× N", (a is not None and ng is not None and a <= 1.1 * ng)
    if kind == "abs_max":
        return t["text"], (a is not None and a <= t["value"])
    if kind == "rss_peak":
        return "≤ ¼ V", (a is not None and vd is not None and a <= vd / 4)
    return None, None


def cmd_report(ctx):
    with open(ctx.results_path) as f:
        results = json.load(f)
    meta, rows = results["meta"], results["rows"]
    index = {r["key"]: r for r in rows}
    m = meta["machine"]
    c = meta["corpus"]
    lines = []
    w = lines.append
    w("# Benchmarks: Airlock vs Verdaccio vs nginx")
    w("")
    w(f"Generated by `bench/run{' --quick' if c['quick'] else ''}` (see `bench/README.md`) on {meta['started'][:10]}, "
      f"run from {meta['started']} to {meta['finished']}.")
    w("")
    w("**Ratios are what count.** All three servers ran on the same machine in the same run, with the load "
      "generator (wrk) on the same two cores, so absolute numbers drift between runs and machines; the ratios "
      "Airlock/Verdaccio (A/V) and Airlock/nginx (A/N) are the comparison. nginx serves Airlock's own packument "
      "bytes as static files (with a precompressed `.gz` beside each, `gzip_static on`) and the same tarballs: "
      "the practical ceiling.")
    w("")
    w("## Machine")
    w("")
    w(f"- {m['nproc']} cores, {m['cpu']}, {m['ram_gib']} GiB RAM, {m['os']}, Linux {m['kernel']}")
    w(f"- Airlock {m['airlock']}, release build; Verdaccio {m['verdaccio']} on Node {m['verdaccio_node']} (local storage, no uplinks); "
      f"{m['nginx']} (2 workers); {m['wrk']}; npm {m['npm']}")
    if meta.get("cpu_steal_percent") is not None:
        w(f"- CPU time taken by the hypervisor (steal) while measuring: {meta['cpu_steal_percent']:.0f}% of the machine's time. "
          "A virtual machine with a busy host gives noisy single runs; that is what the rounds below are for.")
    w("")
    w("## Corpus")
    w("")
    w(f"Deterministic (seed {c['seed']}{', `--quick`' if c['quick'] else ''}): {c['packages']:,} packages, {c['versions']:,} versions, "
      f"{c['tarball_bytes'] / 1e6:,.0f} MB of tarballs (1 KB - 5 MB, real npm tarballs). Huge packages: "
      f"{', '.join(str(v) for v in c['huge_packages'])} versions. Probes: small = `{c['small']['name']}` ({c['small']['versions']} versions), "
      f"huge = `{c['huge']['name']}` ({c['huge']['versions']} versions). The install project depends on {c['install_set']} corpus packages "
      f"without further dependencies. Loaded through each server's publish API (one `PUT /{{name}}` per version)"
      + (f": Airlock in {meta['load_seconds']['airlock']:.0f} s, Verdaccio in {meta['load_seconds']['verdaccio']:.0f} s (in parallel)." if meta.get("load_seconds") else "."))
    w("")
    s = meta["sizes"]
    w("Response sizes of the probes (bytes, identity / gzip):")
    w("")
    w("| document | Airlock | Verdaccio | nginx |")
    w("|---|---:|---:|---:|")
    for pk in ("small", "huge"):
        for rep in ("full", "abbr"):
            cells = []
            for srv in SERVERS:
                plain, gz = s.get(f"{pk}_{rep}_{srv}"), s.get(f"{pk}_{rep}_{srv}_gzip")
                cells.append(f"{plain:,} / {gz:,}" if gz else f"{plain:,} / not gzipped")
            w(f"| {pk} {'full' if rep == 'full' else 'abbreviated'} | " + " | ".join(cells) + " |")
    w("")
    w("## Results")
    w("")
    d = meta["durations"]
    rounds = d.get("rounds", 1)
    w(f"wrk runs of {d['wrk_seconds']} s (rerun for {d['wrk_max_seconds']} s when a server completed "
      f"fewer than max(50, 2×c) requests); c = connections. Each figure is the median of {rounds} round(s) per server (req/s, p50 and p99 each on "
      "its own), the servers taking turns to go first; before every run the harness waits until all three servers are idle (Verdaccio goes on answering "
      f"requests wrk abandoned: {d.get('quiet_waits_s', 0):.0f} s of waiting in all, at most {d.get('quiet_waits_max_s', 0):.0f} s at once). "
      "Packument requests send npm's `Accept` (full: `application/json`, "
      "abbreviated: the corgi header); \"gzip\" rows also send `Accept-Encoding: gzip`, as npm does (measured at c=16 only). "
      "V = Verdaccio, N = nginx.")
    w("")
    w("| figure | unit | Airlock | Verdaccio | nginx | A/V | A/N | target | met |")
    w("|---|---|---:|---:|---:|---:|---:|---|---|")
    met_count = missed = 0
    for r in rows:
        v = r["values"]
        a, vd, ng = v.get("airlock"), v.get("verdaccio"), v.get("nginx")
        text, ok = judge(r, index)
        mark = "" if text is None else ("met" if ok else ("**missed**" if ok is False else "n/a"))
        if ok is True:
            met_count += 1
        elif ok is False:
            missed += 1
        errors = ""
        for srv, d in r.get("detail", {}).items():
            if isinstance(d, dict) and d.get("errors"):
                errors += f" ({srv}: {d['errors']} errors)"
        w(f"| {r['label']}{errors} | {r['unit']} | {fmt(a, r['unit'])} | {fmt(vd, r['unit'])} | {fmt(ng, r['unit'])} | "
          f"{fmt_ratio(ratio(a, vd))} | {fmt_ratio(ratio(a, ng))} | {text or ''} | {mark} |")
    w("")
    w(f"Targets: {met_count} met, {missed} missed.")
    w("")
    if meta.get("rss_by_phase"):
        w("Memory after each phase, VmRSS / VmHWM in MB (nginx: master and workers summed):")
        w("")
        w("| after | Airlock | Verdaccio | nginx |")
        w("|---|---:|---:|---:|")
        for ph in meta["rss_by_phase"]:
            w(f"| {ph['phase']} | " + " | ".join(f"{ph['rss'][srv]:,.0f} / {ph['hwm'][srv]:,.0f}" for srv in SERVERS) + " |")
        w("")
    for failure in meta.get("failures", []):
        w(f"**Failed:** {failure}")
        w("")
    cpu = meta.get("cpu_seconds")
    if cpu:
        w("Server CPU time over the measurement phase: " + ", ".join(f"{k} {v:,.0f} s" for k, v in cpu.items()) + ".")
        w("")
    w("Targets (issue 6): packument GET ≥ 10× Verdaccio's req/s and ≥ 0.5× nginx's; Airlock p99 under load (c=16, c=64) "
      "≤ Verdaccio's p50; tarball throughput ≥ 0.7× nginx; `npm install` within 10% of nginx; RSS idle ≤ 30 MB and at "
      "peak ≤ ¼ of Verdaccio's. Revalidation, publish latency and start-up time have no target; they are reported for comparison.")
    w("")
    with open(ctx.report_path, "w") as f:
        f.write("\n".join(lines))
    log(f"report: wrote {ctx.report_path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=("load", "measure", "report", "all"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--airlock-bin", default=os.path.expanduser("~/.cache/airlock-target/release/airlock"))
    ap.add_argument("--report", help="where to write BENCHMARKS.md")
    ap.add_argument("--airlock-rev", help="the commit the Airlock binary was built from (for the report)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run")
    ap.add_argument("--install-reps", type=int)
    ap.add_argument("--rounds", type=int, help="wrk runs per figure and server (the median counts)")
    ap.add_argument("--reload", action="store_true", help="publish the corpus into Verdaccio again")
    args = ap.parse_args()
    ctx = Ctx(args)
    if args.phase in ("load", "all"):
        cmd_load(ctx, reload_verdaccio=args.reload)
    if args.phase in ("measure", "all"):
        cmd_measure(ctx)
    if args.phase in ("report", "all"):
        cmd_report(ctx)


if __name__ == "__main__":
    main()
