#!/usr/bin/env python3
"""Launch a real Keystone plus a keystonemiddleware-protected echo upstream.

    python harness.py --workdir DIR [--token-expiration SECONDS] [--glance]

Run it with the interpreter of the venv built by setup-venv.sh.  On success
exactly one line of JSON is printed to stdout (URLs, credentials, IDs); then
the harness blocks until stdin reaches EOF or it gets SIGTERM/SIGINT, stops
the processes it started and exits 0.  All child output goes to log files in
the work directory.  With --glance it also runs two real Glance APIs (one
database and store) registered as the `image` service: RegionOne's as a
plain deployment, RegionTwo's with proxy-header parsing on, as clouds behind
HAProxy run it.  On a start-up failure the children are stopped, an error
with the tail of the relevant log goes to stderr, and the exit code is 1.
"""

import argparse
import base64
import ctypes
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)


class HarnessError(Exception):
    def __init__(self, message, log=None):
        super().__init__(message)
        self.log = log


class Stop(BaseException):
    """Raised from the signal handler to unwind to the cleanup code."""


def _on_signal(signum, _frame):
    raise Stop(signum)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(data[-lines:])


def _die_with_parent():
    """preexec_fn: SIGTERM the child if the harness dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # best effort only
        pass


class Harness:
    def __init__(self, workdir, token_expiration, glance):
        self.workdir = os.path.abspath(workdir)
        self.token_expiration = token_expiration
        self.procs = []  # (name, Popen, log path)
        ports = set()
        while len(ports) < 4:
            ports.add(_free_port())
        self.ks_port, self.up_port, g1_port, g2_port = sorted(ports)
        # (region, port, whether it parses X-Forwarded-*/Forwarded)
        self.glances = [("RegionOne", g1_port, False),
                        ("RegionTwo", g2_port, True)] if glance else []
        self.glance_password = secrets.token_urlsafe(18)
        self.ks_root = f"http://127.0.0.1:{self.ks_port}"
        self.ks_url = self.ks_root + "/v3"
        self.up_url = f"http://127.0.0.1:{self.up_port}"
        self.conf_file = os.path.join(self.workdir, "keystone.conf")
        self.manage_log = os.path.join(self.workdir, "keystone-manage.log")
        self.ks_log = os.path.join(self.workdir, "keystone.log")
        self.up_log = os.path.join(self.workdir, "upstream.log")
        self.admin_password = secrets.token_urlsafe(18)
        self.user_password = secrets.token_urlsafe(18)
        self.svc_password = secrets.token_urlsafe(18)
        self.http = requests.Session()

    # ----------------------------------------------------------- files

    def write_config(self):
        os.makedirs(self.workdir, exist_ok=True)
        db = os.path.join(self.workdir, "keystone.db")
        if os.path.exists(db):
            raise HarnessError(f"{db} already exists; use a fresh --workdir")
        conf = f"""\
[DEFAULT]
use_stderr = true

[database]
# Tests run in parallel against one Keystone (4 threads): wait up to 30 s
# for SQLite's lock instead of pysqlite's 5 s, and do not fsync test data.
connection = sqlite:///{db}?timeout=30
sqlite_synchronous = false

[token]
provider = fernet
expiration = {self.token_expiration}

[fernet_tokens]
key_repository = {self.workdir}/fernet-keys

[fernet_receipts]
# Keystone's default shares the token key repository; keep it that way
# (otherwise it points at /etc/keystone/fernet-keys/ and start-up aborts).
key_repository = {self.workdir}/fernet-keys

[credential]
key_repository = {self.workdir}/credential-keys

[identity]
password_hash_rounds = 4

[cache]
enabled = true
backend = dogpile.cache.memory
"""
        with open(self.conf_file, "w") as f:
            f.write(conf)

    def write_key_repositories(self):
        # Same layout keystone-manage fernet_setup / credential_setup produce:
        # key "0" is the staged key, the highest number is the primary key.
        # Written directly to save two keystone-manage runs (~5 s of CPU).
        for name in ("fernet-keys", "credential-keys"):
            repo = os.path.join(self.workdir, name)
            os.makedirs(repo, mode=0o700, exist_ok=True)
            for index in ("0", "1"):
                key = base64.urlsafe_b64encode(os.urandom(32))
                fd = os.open(os.path.join(repo, index),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)

    def write_glance_config(self, region, proxy_headers):
        """A glance-api config directory for one region; all regions share
        the database and the image store."""
        conf_dir = os.path.join(self.workdir, f"glance-{region}")
        os.makedirs(conf_dir, exist_ok=True)
        data = os.path.join(self.workdir, "glance-data")
        for sub in ("images", "staging", "tasks"):
            os.makedirs(os.path.join(data, sub), exist_ok=True)
        paste = os.path.join(conf_dir, "glance-api-paste.ini")
        with open(os.path.join(sys.prefix, "etc", "glance", "glance-api-paste.ini")) as f:
            text = f.read()
        with open(paste, "w") as f:
            f.write(text.replace("/etc/glance/healthcheck_disable",
                                 os.path.join(conf_dir, "healthcheck_disable")))
        conf = f"""\
[DEFAULT]
enabled_backends = fs:file
lock_path = {conf_dir}
log_file = {os.path.join(self.workdir, f"glance-{region}.log")}
use_stderr = false
workers = 1

[database]
connection = sqlite:///{os.path.join(data, "glance.sqlite")}?timeout=30

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {os.path.join(data, "images")}

[os_glance_staging_store]
filesystem_store_datadir = {os.path.join(data, "staging")}

[os_glance_tasks_store]
filesystem_store_datadir = {os.path.join(data, "tasks")}

[paste_deploy]
flavor = keystone
config_file = {paste}

[oslo_middleware]
enable_proxy_headers_parsing = {str(proxy_headers).lower()}

[keystone_authtoken]
www_authenticate_uri = {self.ks_root}
auth_url = {self.ks_url}
auth_type = password
username = glance
password = {self.glance_password}
project_name = service
user_domain_name = Default
project_domain_name = Default
# A revoked token is refused at once, as the renewal tests need.
token_cache_time = -1
"""
        with open(os.path.join(conf_dir, "glance-api.conf"), "w") as f:
            f.write(conf)
        return conf_dir

    # ------------------------------------------------------- processes

    def manage_start(self, *args):
        log = open(self.manage_log, "ab")
        log.write(("\n$ keystone-manage " + " ".join(args[:1]) + "\n").encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                [os.path.join(BIN, "keystone-manage"),
                 "--config-file", self.conf_file, *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
                preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.procs.append(("keystone-manage " + args[0], proc, self.manage_log))
        return proc

    def glance_manage(self, conf_dir, *args):
        log_path = os.path.join(self.workdir, "glance-manage.log")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [os.path.join(BIN, "glance-manage"), "--config-dir", conf_dir, *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
                preexec_fn=_die_with_parent)
        self.procs.append(("glance-manage " + args[0], proc, log_path))
        return proc

    def manage_wait(self, proc, what, timeout=120):
        """Wait for a keystone-manage or glance-manage run started above."""
        name, _, log = next(p for p in self.procs if p[1] is proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise HarnessError(f"{name} ({what}) timed out", log)
        self.procs = [p for p in self.procs if p[1] is not proc]
        if rc != 0:
            raise HarnessError(f"{name} ({what}) failed (exit {rc})", log)

    def start_gunicorn(self, name, app, port, log_path, env, timeout=120):
        cmd = [
            sys.executable, "-m", "gunicorn",
            "--worker-class", "gthread", "--workers", "1", "--threads", "4",
            "--no-control-socket",
            "--bind", f"127.0.0.1:{port}",
            "--pythonpath", HERE,
            "--graceful-timeout", "3", "--timeout", str(timeout),
            "--access-logfile", "-", "--error-logfile", "-",
            "--name", name,
            app,
        ]
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep tests/keystone clean
        full_env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, env=full_env, start_new_session=True,
                preexec_fn=_die_with_parent)
        self.procs.append((name, proc, log_path))
        return proc

    def wait_http(self, name, proc, log, url, ok, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise HarnessError(f"{name} exited with status {proc.returncode}", log)
            try:
                r = self.http.get(url, timeout=5)
                if ok(r.status_code):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"{name} did not answer on {url} within {timeout}s", log)
            time.sleep(0.1)

    def stop_all(self):
        # SIGINT is gunicorn's quick shutdown (SIGTERM would wait up to the
        # graceful timeout for idle keep-alive connections to go away).
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        # Nothing here needs a clean shutdown, so do not wait long: the
        # Keystone worker sometimes ignores the first signal until gunicorn's
        # graceful timeout expires.
        deadline = time.monotonic() + 1.5
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _, proc, _ in self.procs:
            if proc.poll() is None:  # did not stop in time: kill its group
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.procs = []

    # ------------------------------------------------------------- REST

    def api(self, method, path, token, body=None, expect=(200, 201, 204)):
        r = self.http.request(method, self.ks_url + path, json=body, timeout=30,
                              headers={"X-Auth-Token": token})
        if r.status_code not in expect:
            raise HarnessError(f"{method} {path} -> {r.status_code}: {r.text[:500]}",
                               self.ks_log)
        return r.json() if r.content else None

    def password_token(self, user, password, project_id=None, project_name=None,
                       user_by_id=False):
        user_ref = {"password": password}
        if user_by_id:
            user_ref["id"] = user
        else:
            user_ref.update(name=user, domain={"id": "default"})
        auth = {"identity": {"methods": ["password"], "password": {"user": user_ref}}}
        if project_id:
            auth["scope"] = {"project": {"id": project_id}}
        elif project_name:
            auth["scope"] = {"project": {"name": project_name,
                                         "domain": {"id": "default"}}}
        r = self.http.post(self.ks_url + "/auth/tokens", json={"auth": auth}, timeout=30)
        if r.status_code != 201:
            raise HarnessError(f"login as {user} -> {r.status_code}: {r.text[:500]}",
                               self.ks_log)
        return r.headers["X-Subject-Token"]

    def provision(self):
        admin = self.password_token("admin", self.admin_password, project_name="admin")

        def create(collection, key, ref):
            return self.api("POST", "/" + collection, admin, {key: ref})[key]

        projects = {}
        for name in ("alpha", "beta", "gamma", "service"):
            projects[name] = create("projects", "project", {
                "name": name, "domain_id": "default",
                "description": "keystone-proxy integration test project"})["id"]

        roles = {r["name"]: r["id"] for r in self.api("GET", "/roles", admin)["roles"]}
        for name in ("member", "reader", "service", "admin"):
            if name not in roles:
                roles[name] = create("roles", "role", {"name": name})["id"]

        def grant(project, user_id, role):
            self.api("PUT", f"/projects/{projects[project]}/users/{user_id}"
                            f"/roles/{roles[role]}", admin)

        user_id = create("users", "user", {
            "name": "proxy-user", "domain_id": "default",
            "password": self.user_password, "enabled": True})["id"]
        for project in ("alpha", "beta"):
            for role in ("member", "reader"):
                grant(project, user_id, role)

        svc_id = create("users", "user", {
            "name": "upstream-svc", "domain_id": "default",
            "password": self.svc_password, "enabled": True})["id"]
        grant("service", svc_id, "service")  # enough to validate tokens
        grant("service", svc_id, "admin")    # needed to revoke others' tokens

        create("regions", "region", {"id": "RegionTwo"})
        services = [
            ("compute", "nova", (
                ("public", "RegionOne", f"{self.up_url}/compute/v2.1"),
                ("internal", "RegionOne", f"{self.up_url}/internal/compute/v2.1"),
                ("public", "RegionTwo", f"{self.up_url}/r2/compute/v2.1"),
                ("internal", "RegionTwo", f"{self.up_url}/r2/internal/compute/v2.1"))),
            ("volumev3", "cinderv3", (
                ("public", "RegionOne", f"{self.up_url}/volume/v3/$(project_id)s"),)),
        ]
        if self.glances:
            glance_id = create("users", "user", {
                "name": "glance", "domain_id": "default",
                "password": self.glance_password, "enabled": True})["id"]
            grant("service", glance_id, "service")
            services.append(("image", "glance", tuple(
                (interface, region, f"http://127.0.0.1:{port}")
                for region, port, _ in self.glances
                for interface in ("public", "internal"))))
        for stype, sname, endpoints in services:
            service_id = create("services", "service",
                                {"type": stype, "name": sname, "enabled": True})["id"]
            for interface, region, url in endpoints:
                create("endpoints", "endpoint", {
                    "service_id": service_id, "interface": interface, "url": url,
                    "region_id": region, "enabled": True})

        user_token = self.password_token(user_id, self.user_password,
                                         project_id=projects["alpha"], user_by_id=True)
        app_secret = secrets.token_urlsafe(24)
        app_cred = self.api("POST", f"/users/{user_id}/application_credentials",
                            user_token, {"application_credential": {
                                "name": "proxy-app-cred", "secret": app_secret,
                                "description": "keystone-proxy integration tests"}},
                            )["application_credential"]

        return {
            "keystone_url": self.ks_url,
            "upstream_url": self.up_url,
            "admin": {"username": "admin", "password": self.admin_password,
                      "project_name": "admin", "domain": "Default"},
            "user": {"id": user_id, "name": "proxy-user",
                     "password": self.user_password, "domain": "Default"},
            "projects": {n: projects[n] for n in ("alpha", "beta", "gamma")},
            "roles": {"member": roles["member"], "reader": roles["reader"]},
            "app_cred": {"id": app_cred["id"], "name": app_cred["name"],
                         "secret": app_secret, "project_id": app_cred["project_id"]},
            "token_expiration": self.token_expiration,
            "workdir": self.workdir,
            "glance": {region: f"http://127.0.0.1:{port}"
                       for region, port, _ in self.glances},
        }

    # ------------------------------------------------------------ main

    def start(self):
        self.write_config()
        self.write_key_repositories()

        # Keystone and the upstream are started while the database is being
        # built: importing them takes a few seconds and neither touches the
        # database or Keystone until the first request comes in.
        db_sync = self.manage_start("db_sync")
        keystone = self.start_gunicorn(
            "keystone", "keystone_wsgi:application", self.ks_port, self.ks_log,
            {"OS_KEYSTONE_CONFIG_DIR": self.workdir})
        upstream = self.start_gunicorn(
            "upstream", "upstream_app:application", self.up_port, self.up_log,
            {"UPSTREAM_KEYSTONE_URL": self.ks_url,
             "UPSTREAM_SVC_USER": "upstream-svc",
             "UPSTREAM_SVC_PASSWORD": self.svc_password,
             "UPSTREAM_SVC_PROJECT": "service"})
        self.manage_wait(db_sync, "db_sync")
        # Write-ahead logging (kept in the file): readers never block the
        # writer, so concurrent tests do not meet "database is locked" 500s.
        db = sqlite3.connect(os.path.join(self.workdir, "keystone.db"))
        try:
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()

        glance_dirs = [self.write_glance_config(region, parsing)
                       for region, _, parsing in self.glances]
        glance_sync = None
        if glance_dirs:
            glance_sync = self.glance_manage(glance_dirs[0], "db_sync")

        bootstrap = self.manage_start(
            "bootstrap", "--bootstrap-password", self.admin_password,
            "--bootstrap-region-id", "RegionOne",
            "--bootstrap-admin-url", self.ks_url,
            "--bootstrap-internal-url", self.ks_url,
            "--bootstrap-public-url", self.ks_url)
        self.manage_wait(bootstrap, "bootstrap")

        self.wait_http("keystone", keystone, self.ks_log, self.ks_url,
                       lambda s: s == 200)
        info = self.provision()
        glances = []
        if glance_sync is not None:
            self.manage_wait(glance_sync, "db_sync", timeout=300)
            for (region, port, _), conf_dir in zip(self.glances, glance_dirs):
                log = os.path.join(self.workdir, f"glance-{region}.access.log")
                proc = self.start_gunicorn(
                    f"glance-{region}", "glance.wsgi.api:application", port, log,
                    {"OS_GLANCE_CONFIG_DIR": conf_dir}, timeout=600)
                glances.append((region, port, proc, log))
        self.wait_http("upstream", upstream, self.up_log, self.up_url + "/",
                       lambda s: s == 401)
        self.warm_up_upstream()
        for region, port, proc, log in glances:
            # Version discovery needs no token: 300 Multiple Choices.
            self.wait_http(f"glance {region}", proc, log,
                           f"http://127.0.0.1:{port}/", lambda s: s == 300,
                           timeout=120)
        return info

    def warm_up_upstream(self):
        # keystonemiddleware logs its service user in and discovers Keystone's
        # versions on its first validation; done here once, so that the
        # first tests do not all race through that cold path together.
        token = self.password_token("admin", self.admin_password, project_name="admin")
        r = self.http.get(self.up_url + "/warm-up", headers={"X-Auth-Token": token},
                          timeout=60)
        if r.status_code != 200:
            raise HarnessError(f"upstream warm-up -> {r.status_code}: {r.text[:500]}",
                               self.up_log)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--token-expiration", type=int, default=3600,
                        help="Keystone [token] expiration in seconds (default 3600)")
    parser.add_argument("--glance", action="store_true",
                        help="also run Glance in RegionOne and RegionTwo")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    harness = Harness(args.workdir, args.token_expiration, args.glance)
    try:
        try:
            info = harness.start()
        except HarnessError as e:
            print(f"harness: start-up failed: {e}", file=sys.stderr)
            if e.log:
                print(f"--- last lines of {e.log} ---\n{_tail(e.log)}", file=sys.stderr)
            return 1
        except Stop:
            return 0
        except Exception as e:  # unexpected: still clean up and report
            print(f"harness: start-up failed: {type(e).__name__}: {e}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return 1

        try:
            sys.stdout.write(json.dumps(info) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # the reader is gone already
            return 1

        try:
            while os.read(0, 65536):
                pass
        except Stop:
            pass
        except OSError:
            pass
        return 0
    finally:
        # Ignore further signals while stopping the children.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        harness.stop_all()


if __name__ == "__main__":
    sys.exit(main())
