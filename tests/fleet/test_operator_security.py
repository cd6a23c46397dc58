"""Operators against the real controller process (``fleet-controller serve`` with mosquitto and real agents): roles
enforced by the server on the API and on the dashboard's form posts, server-side sessions that end at logout, at an
admin's revocation and at a role change, login throttling per account and per client address, the redirect after
login restricted to local paths, the cookie's flags (``Secure`` over TLS), and ``serve`` refusing to start without
an admin outside the demo mode. Plus the route walk that keeps every new route from forgetting its role, and the
session clock (idle timeout, absolute lifetime) with a fake time."""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from drivers.sim.process import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "test-operator-password"  # tests/fleet/conftest.py
COOKIE = "fleet_session"
PUBLIC = {("GET", "/healthz"), ("POST", "/api/v1/auth/token"), ("GET", "/login"), ("POST", "/login"),
          ("POST", "/logout"), ("GET", "/static/fleet.css"), ("GET", "/static/fleet.js")}


# --- helpers ------------------------------------------------------------------------------------------------------

class Browser:
    """A dashboard user: the session cookie kept by hand (as a browser would send it back), no redirects followed."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=15, verify=False, follow_redirects=False)
        self.token = ""

    def login(self, username: str, password: str, next: str = "/") -> httpx.Response:  # noqa: A002
        r = self.http.post("/login", data={"username": username, "password": password, "next": next})
        cookie = r.headers.get("set-cookie", "")
        if r.status_code == 303 and cookie.startswith(COOKIE + "="):
            self.token = cookie.split(";", 1)[0].split("=", 1)[1]
        return r

    def _h(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        return {**({"Cookie": f"{COOKIE}={self.token}"} if self.token else {}), **(headers or {})}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=self._h(kw.pop("headers", None)), **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, headers=self._h(kw.pop("headers", None)), **kw)

    def csrf(self) -> str:
        page = self.get("/")
        assert page.status_code == 200, page.status_code
        m = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
        assert m, "no CSRF token on the page"
        return m.group(1)

    def close(self) -> None:
        self.http.close()


def bearer(url: str, username: str, password: str) -> httpx.Client:
    r = httpx.post(url + "/api/v1/auth/token", json={"username": username, "password": password}, verify=False)
    assert r.status_code == 200, r.text
    return httpx.Client(base_url=url, timeout=15, verify=False,
                        headers={"Authorization": f"Bearer {r.json()['access_token']}"})


def add_operator(controller: Any, username: str, role: str, password: str = "pass-" + "w0rd-long") -> str:
    r = controller.post("/api/v1/operators", {"username": username, "password": password, "role": role})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == role and not r.json()["disabled"]
    return password


# --- the route walk -------------------------------------------------------------------------------------------------

def test_every_route_declares_its_role_and_checks_it() -> None:
    from fleet.controller.api import create_app
    from fleet.controller.auth import ROLES

    app = create_app(None)
    checked = 0
    for route in app.routes:
        if not isinstance(route, APIRoute):
            assert route.path in ("/api/v1/openapi.json",), f"unexpected non-API route {route.path}"
            continue
        for method in route.methods:
            if (method, route.path) in PUBLIC:
                continue
            declared = (route.openapi_extra or {}).get("x-required-role")
            assert declared in ROLES, f"{method} {route.path} declares no x-required-role (use **guard(role))"
            required = {getattr(d.call, "required_role", None) for d in route.dependant.dependencies}
            assert declared in required, f"{method} {route.path} declares {declared} but checks {required}"
            checked += 1
    assert checked >= 25
    spec = app.openapi()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if (method.upper(), path) not in PUBLIC:
                assert op["x-required-role"] in ROLES, (method, path)
    assert spec["paths"]["/api/v1/kiosks/{kiosk_id}/commands"]["post"]["x-command-roles"]["push_profile"] == "admin"
    assert spec["paths"]["/api/v1/operators/{username}/sessions/revoke"]["post"]["x-required-role"] == "admin"


def test_safe_next_only_allows_local_paths() -> None:
    from fleet.controller.auth import safe_next

    for bad in ("/\\evil.example", "//evil.example", "https://evil.example", "http:/evil.example", "evil.example",
                "/\\/evil.example", "\\\\evil.example", "/\t/evil.example", "javascript:alert(1)", "", None,
                "///evil.example", " /x", "/x\r\nLocation: //evil.example"):
        assert safe_next(bad) == "/", bad
    for good in ("/", "/alerts?status=open", "/kiosks/KSK-1#alerts", "/kiosks/a%2Fb"):
        assert safe_next(good) == good


# --- sessions and throttling against a store, on a fake clock -------------------------------------------------------

def test_session_clock_idle_absolute_and_throttle_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from fleet.controller.auth import (ABSOLUTE_S, IDLE_S, LoginFailed, LoginThrottled, Sessions, hash_password,
                                       token_hash)
    from fleet.controller.store import Store

    store = Store(tmp_path / "fleet.db")
    store.create_schema()
    t0 = 1_700_000_000_000
    store.upsert_operator("zhang", hash_password("right-password"), "张", "operator", t0)
    s = Sessions(store)
    token, p = s.login("zhang", "right-password", "10.0.0.9", "cookie", t0)
    assert p.role == "operator" and s.principal(token, t0 + 1000).username == "zhang"
    row = store.session(token_hash(token))
    assert row.username == "zhang" and token not in str(tuple(row))  # only the hash is stored
    # idle: unused for IDLE_S → gone; used every 20 min → lives until the absolute lifetime
    assert s.principal(token, t0 + IDLE_S * 1000 + 2000) is None
    token, _ = s.login("zhang", "right-password", "10.0.0.9", "cookie", t0)
    t = t0
    while t + 20 * 60_000 < t0 + ABSOLUTE_S * 1000:
        t += 20 * 60_000
        assert s.principal(token, t) is not None, (t - t0) / 3_600_000
    assert s.principal(token, t0 + ABSOLUTE_S * 1000) is None
    # the refresh of an open page (touch=False) does not keep a session alive
    token, _ = s.login("zhang", "right-password", "10.0.0.9", "cookie", t0)
    assert s.principal(token, t0 + 20 * 60_000, touch=False) is not None
    assert s.principal(token, t0 + 31 * 60_000) is None
    # throttling: the 6th try is refused whatever the password; failures logged without the password
    caplog.set_level(logging.INFO, logger="fleet.controller.auth")
    for i in range(5):
        with pytest.raises(LoginFailed):
            s.login("zhang", f"secret-guess-{i}", "10.0.0.7", "cookie", t0 + i)
    with pytest.raises(LoginThrottled) as exc:
        s.login("zhang", "right-password", "10.0.0.7", "cookie", t0 + 10)
    assert 14 * 60 <= exc.value.retry_after_s <= 15 * 60
    assert s.login("zhang", "right-password", "10.0.0.7", "cookie", t0 + 15 * 60_000 + 10)[1].username == "zhang"
    with pytest.raises(LoginFailed):   # a password typed into the name field is never logged
        s.login("hunter2-typed-as-name", "x", "10.0.0.8", "cookie", t0 + 15 * 60_000 + 20)
    text = caplog.text
    assert "login failed for user 'zhang' from 10.0.0.7" in text and "throttled" in text
    assert "login failed for an unknown user name from 10.0.0.8" in text
    assert "secret-guess" not in text and "right-password" not in text and "hunter2" not in text
    store.dispose()


# --- roles through the real controller -------------------------------------------------------------------------------

def test_roles_are_enforced_on_the_api_and_on_the_dashboards_forms(start_controller: Any, start_agents: Any,
                                                                   wait_for: Any) -> None:
    controller = start_controller()
    agents = start_agents(1, "KSK-R-", "--poll", "0.2")
    wait_for(lambda: controller.get("/api/v1/summary")["online"] == 1, 15, what="the kiosk online")
    agents.cmd("set_paper", kiosk="KSK-R-0001", state="out")
    alert = wait_for(lambda: controller.alerts(kiosk_id="KSK-R-0001"), 5, what="the paper-out alert")[0]
    viewer_pw = add_operator(controller, "wang.viewer", "viewer")
    operator_pw = add_operator(controller, "li.operator", "operator")
    kiosk_cmds = "/api/v1/kiosks/KSK-R-0001/commands"
    push = {"name": "push_profile", "args": {"profile": "profile_version: 1\n"}}

    # viewer: reads everything, changes nothing — API (bearer) …
    viewer = bearer(controller.url, "wang.viewer", viewer_pw)
    assert viewer.get("/api/v1/auth/me").json()["role"] == "viewer"
    assert viewer.get("/api/v1/kiosks").status_code == 200 and viewer.get("/api/v1/alerts").json()
    for body in (push, {"name": "restart_app"}, {"name": "out_of_service"}):
        r = viewer.post(kiosk_cmds, json=body)
        assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role"), body
    r = viewer.post(f"/api/v1/alerts/{alert['id']}/ack")
    assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role")
    assert viewer.get("/api/v1/operators").status_code == 403
    r = viewer.get("/api/v1/dead-letters")  # payload previews: operator and up
    assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role")
    assert viewer.post("/api/v1/operators/wang.viewer/sessions/revoke").status_code == 403
    assert viewer.patch("/api/v1/operators/wang.viewer", json={"role": "admin"}).status_code == 403
    # the desired profile: viewers see it, only an admin sets it
    assert viewer.get("/api/v1/kiosks/KSK-R-0001/profile").json()["status"] == "no_desired"
    r = viewer.put("/api/v1/kiosks/KSK-R-0001/profile", json={"profile": "x: 1"})
    assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role")
    # … and the dashboard: no buttons, and the form posts (with a valid CSRF token) refused by the server
    vb = Browser(controller.url)
    assert vb.login("wang.viewer", viewer_pw).status_code == 303
    page = vb.get("/kiosks/KSK-R-0001")
    assert page.status_code == 200 and "data-command=" not in page.text and "data-ack=" not in page.text
    assert 'id="read-only-note"' in page.text and 'href="/operators"' not in page.text
    csrf = vb.csrf()
    for name in ("push_profile", "restart_app", "out_of_service"):
        r = vb.post("/kiosks/KSK-R-0001/commands", data={"csrf": csrf, "name": name, "profile": "x: 1"})
        assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role"), name
    r = vb.post(f"/alerts/{alert['id']}/ack", data={"csrf": csrf, "next": "/alerts"})
    assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role")
    assert vb.get("/operators").status_code == 403
    r = vb.post("/operators/wang.viewer", data={"csrf": csrf, "action": "role", "role": "admin"})
    assert r.status_code == 403
    assert controller.get("/api/v1/kiosks/KSK-R-0001/commands") == []
    assert controller.alerts(kiosk_id="KSK-R-0001")[0]["acked_by"] is None

    # operator: acknowledges, takes out of service; no push, no restart, no self-test, no operator management
    op = bearer(controller.url, "li.operator", operator_pw)
    for body in (push, {"name": "restart_app"}, {"name": "self_test"}):
        r = op.post(kiosk_cmds, json=body)
        assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role"), body
    assert op.post("/api/v1/operators", json={"username": "x1", "password": "12345678x"}).status_code == 403
    r = op.put("/api/v1/kiosks/KSK-R-0001/profile", json={"profile": "x: 1"})
    assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role")
    assert op.get("/api/v1/dead-letters").status_code == 200
    ob = Browser(controller.url)
    assert ob.login("li.operator", operator_pw).status_code == 303
    page = ob.get("/kiosks/KSK-R-0001").text
    assert 'data-command="out_of_service"' in page and 'data-command="show_announcement"' in page
    assert 'data-command="push_profile"' not in page and 'data-command="restart_app"' not in page
    assert "data-ack=" in page
    r = ob.post("/kiosks/KSK-R-0001/commands", data={"csrf": ob.csrf(), "name": "push_profile", "profile": "x: 1"})
    assert (r.status_code, r.json()["detail"]) == (403, "forbidden_role")
    r = ob.post(f"/alerts/{alert['id']}/ack", data={"csrf": ob.csrf(), "next": "/alerts"})
    assert r.status_code == 303 and r.headers["location"] == "/alerts"
    assert controller.alerts(kiosk_id="KSK-R-0001")[0]["acked_by"] == "li.operator"
    r = op.post(kiosk_cmds, json={"name": "out_of_service"})
    assert r.status_code == 202 and r.json()["created_by"] == "li.operator"
    # the operator's cookie on the API still needs the CSRF header for a change
    r = ob.http.post(f"/api/v1/alerts/{alert['id']}/ack", headers={"Cookie": f"{COOKIE}={ob.token}"})
    assert (r.status_code, r.json()["detail"]) == (403, "missing or wrong X-CSRF-Token")

    # admin: pushes a profile, restarts; sees every route's role on the API page and the operators page
    assert controller.post(kiosk_cmds, push).status_code == 202
    assert controller.post(kiosk_cmds, {"name": "restart_app"}).status_code == 202
    ab = Browser(controller.url)
    assert ab.login("admin", ADMIN_PASSWORD).status_code == 303
    page = ab.get("/kiosks/KSK-R-0001").text
    assert 'data-command="push_profile"' in page and 'data-command="restart_app"' in page
    ops = ab.get("/operators")
    assert ops.status_code == 200 and 'data-operator="wang.viewer"' in ops.text
    assert "/api/v1/operators/{username}/sessions/revoke" in ab.get("/api").text
    for c in (viewer, op):
        c.close()
    for b in (vb, ob, ab):
        b.close()


def test_sessions_end_at_logout_revocation_role_change_and_disable(start_controller: Any) -> None:
    controller = start_controller()
    pw = add_operator(controller, "zhao", "operator")

    def live(b: Browser) -> bool:
        me = b.get("/api/v1/auth/me")
        assert me.status_code in (200, 401), me.status_code
        return me.status_code == 200

    # logout: the old cookie is refused on the next request (API and page)
    b = Browser(controller.url)
    assert b.login("zhao", pw).status_code == 303 and live(b)
    assert b.post("/logout").status_code == 303
    assert not live(b)
    page = b.get("/alerts")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=%2Falerts")

    # an admin revokes every session of the operator: cookie and bearer token both refused
    b = Browser(controller.url)
    assert b.login("zhao", pw).status_code == 303 and live(b)
    script = bearer(controller.url, "zhao", pw)
    assert script.get("/api/v1/summary").status_code == 200
    sessions = controller.get("/api/v1/operators/zhao/sessions")
    assert {s["kind"] for s in sessions} == {"cookie", "bearer"} and all(s["client_addr"] == "127.0.0.1"
                                                                         for s in sessions)
    r = controller.post("/api/v1/operators/zhao/sessions/revoke")
    assert r.status_code == 200 and r.json()["revoked"] == 2
    assert not live(b) and script.get("/api/v1/summary").status_code == 401
    assert controller.get("/api/v1/operators/zhao/sessions") == []

    # a role change ends the sessions too (the new role needs a new login)
    assert b.login("zhao", pw).status_code == 303 and live(b)
    r = controller.api.patch("/api/v1/operators/zhao", json={"role": "viewer"})
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert not live(b)
    assert b.login("zhao", pw).status_code == 303 and b.get("/api/v1/auth/me").json()["role"] == "viewer"

    # disabled: sessions end and logging in fails like a wrong password; enabled again: logs in
    assert controller.api.patch("/api/v1/operators/zhao", json={"disabled": True}).json()["disabled"] is True
    assert not live(b)
    assert b.login("zhao", pw).status_code == 401
    assert controller.api.patch("/api/v1/operators/zhao", json={"disabled": False}).status_code == 200
    assert b.login("zhao", pw).status_code == 303 and live(b)

    # the admin's own page form revokes too
    ab = Browser(controller.url)
    assert ab.login("admin", ADMIN_PASSWORD).status_code == 303
    r = ab.post("/operators/zhao", data={"csrf": ab.csrf(), "action": "revoke"})
    assert r.status_code == 303 and "msg=" in r.headers["location"]
    assert not live(b)
    # the last admin cannot lock everybody out
    r = controller.api.patch("/api/v1/operators/admin", json={"disabled": True})
    assert r.status_code == 409
    # a forged or random cookie is nothing
    b.token = "A" * 43
    assert not live(b)
    b.close()
    ab.close()


def test_login_is_throttled_per_account(start_controller: Any) -> None:
    controller = start_controller()
    add_operator(controller, "sun", "operator", "sun-password-1")
    b = Browser(controller.url)
    for _ in range(5):
        assert b.login("admin", "wrong-password").status_code == 401
    r = b.login("admin", ADMIN_PASSWORD)  # the 6th try, with the right password
    assert r.status_code == 429 and 800 <= int(r.headers["retry-after"]) <= 900
    assert "登录失败次数过多" in r.text and not b.token
    r = httpx.post(controller.url + "/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # an account that does not exist answers exactly the same (nothing tells whether it exists)
    for _ in range(5):
        assert b.login("nobody-here", "wrong-password").status_code == 401
    r = b.login("nobody-here", "wrong-password")
    assert r.status_code == 429 and "登录失败次数过多" in r.text
    # another account from the same address is not locked (10 failures < the address limit)
    assert b.login("sun", "sun-password-1").status_code == 303
    # the bearer token fixture session of the admin, issued before, still works (a lock refuses logins only)
    assert controller.api.get("/api/v1/auth/me").json()["username"] == "admin"
    b.close()


def test_login_is_throttled_per_client_address(start_controller: Any) -> None:
    controller = start_controller()
    b = Browser(controller.url)
    for i in range(5):
        for _ in range(4):  # under the account limit each, 20 together
            assert b.login(f"guess{i}", "wrong-password").status_code == 401
    r = b.login("admin", ADMIN_PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    r = httpx.post(controller.url + "/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429
    b.close()


# --- redirects and cookies --------------------------------------------------------------------------------------------

def test_the_redirect_after_login_only_goes_to_local_paths(start_controller: Any) -> None:
    controller = start_controller()
    for evil in ("/\\evil.example", "//evil.example", "https://evil.example", "/\\/evil.example",
                 "http:evil.example"):
        b = Browser(controller.url)
        page = b.http.get("/login", params={"next": evil})
        assert 'name="next" value="/"' in page.text, evil
        r = b.login("admin", ADMIN_PASSWORD, next=evil)
        assert r.status_code == 303 and r.headers["location"] == "/", evil
        r = b.post("/alerts/999/ack", data={"csrf": b.csrf(), "next": evil})
        assert r.status_code == 303 and r.headers["location"] == "/alerts", evil
        b.close()
    b = Browser(controller.url)
    r = b.login("admin", ADMIN_PASSWORD, next="/alerts?status=all")
    assert r.headers["location"] == "/alerts?status=all"
    # plain HTTP without --cookie-secure: HttpOnly and SameSite=Strict, not Secure
    flags = [f.strip().lower() for f in r.headers["set-cookie"].split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "secure" not in flags
    b.close()


def _throwaway_cert(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_cookie_is_secure_over_tls_and_with_cookie_secure(start_controller: Any, tmp_path: Path) -> None:
    cert, key = _throwaway_cert(tmp_path)
    tls = start_controller("--tls-cert", str(cert), "--tls-key", str(key), db=str(tmp_path / "tls.db"))
    assert tls.url.startswith("https://")
    b = Browser(tls.url)
    r = b.login("admin", ADMIN_PASSWORD)
    flags = [f.strip().lower() for f in r.headers["set-cookie"].split(";")]
    assert r.status_code == 303 and {"secure", "httponly", "samesite=strict"} <= set(flags), flags
    assert b.get("/api/v1/auth/me").json()["kind"] == "cookie"
    b.close()
    behind_proxy = start_controller("--cookie-secure", db=str(tmp_path / "proxy.db"))
    b = Browser(behind_proxy.url)
    flags = [f.strip().lower() for f in b.login("admin", ADMIN_PASSWORD).headers["set-cookie"].split(";")]
    assert {"secure", "httponly", "samesite=strict"} <= set(flags), flags
    b.close()


# --- no default password ---------------------------------------------------------------------------------------------

def test_serve_refuses_to_start_without_an_admin_outside_the_demo(broker: Any, keys: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    db = str(tmp_path / "fresh.db")
    serve = [sys.executable, "-m", "fleet.controller.cli", "serve", "--broker", broker.url, "--db", db, "--http",
             "127.0.0.1:0", "--signing-key", str(keys[0])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    # no admin, no --demo: refused, even with FLEET_ADMIN_PASSWORD set (only the demo uses it)
    for extra_env in ({}, {"FLEET_ADMIN_PASSWORD": ADMIN_PASSWORD}):
        out = subprocess.run(serve, env={**env, **extra_env}, cwd=str(ROOT), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 2 and out.stdout == "", out.stderr[-2000:]
        assert "fleet-controller add-operator --role admin NAME" in out.stderr
    # --demo without the password: refused too (there is no built-in default)
    out = subprocess.run(serve + ["--demo"], env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "FLEET_ADMIN_PASSWORD" in out.stderr
    # a viewer is not enough
    add = [sys.executable, "-m", "fleet.controller.cli", "add-operator", "--db", db]
    subprocess.run(add + ["--role", "viewer", "kan"], env={**env, "FLEET_OPERATOR_PASSWORD": "kan-password"},
                   cwd=str(ROOT), check=True, capture_output=True, timeout=60)
    assert subprocess.run(serve, env=env, cwd=str(ROOT), capture_output=True, timeout=60).returncode == 2
    # the way the message says: add an admin, then serve starts and that admin logs in
    subprocess.run(add + ["--role", "admin", "chen"], env={**env, "FLEET_OPERATOR_PASSWORD": "chen-password"},
                   cwd=str(ROOT), check=True, capture_output=True, timeout=60)
    proc = ManagedProcess(serve, "fleet-controller", start_timeout=30, env=env, cwd=str(ROOT))
    try:
        url = "http://" + proc.endpoints["http"]
        r = httpx.post(url + "/api/v1/auth/token", json={"username": "chen", "password": "chen-password"})
        assert r.status_code == 200
        r = httpx.post(url + "/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 401  # no demo admin was made
    finally:
        proc.stop(10)
    for path in (ROOT / "scripts" / "demo.py", ROOT / "fleet" / "controller" / "cli.py"):
        assert "demo-admin" not in path.read_text("utf-8")
