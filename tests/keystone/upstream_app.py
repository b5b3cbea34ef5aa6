"""Echo upstream protected by keystonemiddleware (test harness only).

Served by gunicorn as ``upstream_app:application``.  Configuration comes from
the environment (set by harness.py):

  UPSTREAM_KEYSTONE_URL   Keystone v3 URL, e.g. http://127.0.0.1:5000/v3
  UPSTREAM_SVC_USER       service user name (domain Default)
  UPSTREAM_SVC_PASSWORD   its password
  UPSTREAM_SVC_PROJECT    its project (domain Default)

Every request that passes auth_token is answered with a JSON description of
what arrived.  A path ending in ``/revoke-my-token`` additionally revokes the
token that came with the request.
"""

import hashlib
import json
import os
import threading

import requests
from keystonemiddleware import auth_token

KEYSTONE_URL = os.environ["UPSTREAM_KEYSTONE_URL"].rstrip("/")
SVC_USER = os.environ["UPSTREAM_SVC_USER"]
SVC_PASSWORD = os.environ["UPSTREAM_SVC_PASSWORD"]
SVC_PROJECT = os.environ.get("UPSTREAM_SVC_PROJECT", "service")

# Headers whose values are secrets: reported as their sha256 instead.
SECRET_HEADERS = ("HTTP_X_AUTH_TOKEN", "HTTP_X_SERVICE_TOKEN")


def _sha256(data):
    if isinstance(data, str):
        data = data.encode("latin-1")
    return hashlib.sha256(data).hexdigest()


class _ServiceToken:
    """Token of the service user, used to revoke other tokens."""

    def __init__(self):
        self._lock = threading.Lock()
        self._token = None

    def get(self, refresh=False):
        with self._lock:
            if self._token is None or refresh:
                body = {"auth": {
                    "identity": {"methods": ["password"], "password": {"user": {
                        "name": SVC_USER, "domain": {"name": "Default"},
                        "password": SVC_PASSWORD}}},
                    "scope": {"project": {"name": SVC_PROJECT,
                                          "domain": {"name": "Default"}}},
                }}
                r = requests.post(KEYSTONE_URL + "/auth/tokens", json=body, timeout=30)
                r.raise_for_status()
                self._token = r.headers["X-Subject-Token"]
            return self._token


_service_token = _ServiceToken()


def _revoke(subject_token):
    """DELETE /v3/auth/tokens for subject_token; returns the HTTP status."""
    status = None
    for attempt in range(2):
        r = requests.delete(
            KEYSTONE_URL + "/auth/tokens",
            headers={"X-Auth-Token": _service_token.get(refresh=attempt > 0),
                     "X-Subject-Token": subject_token},
            timeout=30,
        )
        status = r.status_code
        if status != 401:  # 401: our own service token went stale; retry once
            break
    return status


def _raw_path(environ):
    raw = environ.get("RAW_URI")
    if raw is None:  # not gunicorn: rebuild from the (decoded) WSGI fields
        raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
    if "://" in raw.split("?", 1)[0]:  # absolute-form request target
        after_scheme = raw.split("://", 1)[1]
        slash = after_scheme.find("/")
        raw = after_scheme[slash:] if slash >= 0 else "/"
    return raw.split("?", 1)[0]


def _capture_headers(app):
    """Record the HTTP_* headers as the client sent them, before
    auth_token strips/adds identity headers."""

    def wrapper(environ, start_response):
        headers = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key] = _sha256(value) if key in SECRET_HEADERS else value
        environ["upstream.client_headers"] = headers
        return app(environ, start_response)

    return wrapper


def echo_app(environ, start_response):
    body = b""
    stream = environ.get("wsgi.input")
    if stream is not None:
        chunks = []
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
        body = b"".join(chunks)

    token = environ.get("HTTP_X_AUTH_TOKEN")
    roles = environ.get("HTTP_X_ROLES")
    query = environ.get("QUERY_STRING")
    reply = {
        "method": environ.get("REQUEST_METHOD"),
        "path": _raw_path(environ),
        "query": query if query else None,
        "project_id": environ.get("HTTP_X_PROJECT_ID") or environ.get("X_PROJECT_ID"),
        "project_name": environ.get("HTTP_X_PROJECT_NAME"),
        "system_scope": environ.get("HTTP_OPENSTACK_SYSTEM_SCOPE"),
        "user_id": environ.get("HTTP_X_USER_ID"),
        "roles": [r for r in roles.split(",") if r] if roles else [],
        "token_sha256": _sha256(token) if token else None,
        "body_len": len(body),
        "body_sha256": _sha256(body),
        "content_type": environ.get("CONTENT_TYPE") or None,
        "headers": environ.get("upstream.client_headers", {}),
    }

    status = "200 OK"
    if environ.get("PATH_INFO", "").endswith("/revoke-my-token"):
        code = _revoke(token) if token else None
        reply["revoked"] = code == 204
        if code != 204:
            reply["revoke_status"] = code
            status = "500 Internal Server Error"

    payload = json.dumps(reply).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(payload)))])
    return [payload]


_auth_conf = {
    "auth_url": KEYSTONE_URL,
    "www_authenticate_uri": KEYSTONE_URL.rsplit("/v3", 1)[0],
    "auth_type": "password",
    "username": SVC_USER,
    "password": SVC_PASSWORD,
    "project_name": SVC_PROJECT,
    "user_domain_name": "Default",
    "project_domain_name": "Default",
    "interface": "public",
    "delay_auth_decision": "false",
    # -1: never cache validation results, so revocation is seen at once.
    "token_cache_time": "-1",
    # The whole request to Keystone, not only the connect (keystoneauth's
    # session timeout): under the full test suite on two cores Keystone can
    # be slow, and a timeout here is a 503 that no proxy could have avoided.
    "http_connect_timeout": "30",
    "log_name": "upstream",
}

application = _capture_headers(auth_token.AuthProtocol(echo_app, _auth_conf))
