"""The console over HTTP (issue 17 §4): DT&V's token or nothing, the pages' counts and what
was planted, the proof download `lvvx audit check-proof` accepts, and no outside host."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from tests.unit.console.conftest import Served

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def _get(served: Served, path: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {served.planted.token}"}
    return httpx.get(served.url + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_no_token_is_sent_to_the_login_form_and_a_wrong_one_refused(served: Served) -> None:
    bare = httpx.get(served.url + "/cases?step=CLOSED", timeout=10)
    assert bare.status_code == 303
    assert bare.headers["location"] == "/login?next=/cases%3Fstep%3DCLOSED"
    wrong = httpx.get(served.url + "/", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    refused = httpx.post(served.url + "/login", data={"token": "nope", "next": "/"}, timeout=10)
    assert refused.status_code == 401 and "Wrong token" in refused.text
    assert "set-cookie" not in refused.headers


def test_the_login_sets_an_httponly_strict_session_cookie_that_is_not_the_token(
    served: Served,
) -> None:
    token = served.planted.token
    login = httpx.post(served.url + "/login", data={"token": token, "next": "//elsewhere"},
                       timeout=10)  # fmt: skip
    assert login.status_code == 303 and login.headers["location"] == "/"  # never off-site
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and token not in cookie
    value = login.cookies["lvvx_console"]
    page = httpx.get(served.url + "/", cookies={"lvvx_console": value}, timeout=10)
    assert page.status_code == 200 and "The network" in page.text


def test_every_page_says_it_holds_no_personal_data(served: Served) -> None:
    p = served.planted
    for path in ("/", "/cases", f"/cases/{p.overdue_case}", f"/proof?message_id={p.lost_message}",
                 "/login"):  # fmt: skip
        page = _get(served, path)
        assert page.status_code == 200, path
        assert "No personal data: built from audit metadata only." in page.text, path


def test_the_cases_filter_by_step_overdue_and_escalation(served: Served) -> None:
    p = served.planted
    overdue = _get(served, "/cases?overdue=1").text
    assert str(p.overdue_case) in overdue and str(p.lost_case) not in overdue
    intake = _get(served, "/cases?step=INTAKE").text
    assert str(p.lost_case) in intake and str(p.overdue_case) not in intake
    escalated = _get(served, "/cases?escalation=1").text
    assert str(p.overdue_case) not in escalated


def test_the_timeline_holds_the_case_events_of_every_chain(served: Served) -> None:
    p = served.planted
    page = _get(served, f"/cases/{p.lost_case}").text
    assert "IntakeRegistered" in page and "SENT" in page and "DELIVERED" in page
    assert _get(served, f"/cases/{p.lost_message}").status_code == 404  # a message, not a case


def test_the_downloaded_proof_is_what_lvvx_audit_check_proof_checks(served: Served,
                                                                    tmp_path: object) -> None:  # fmt: skip
    from pathlib import Path

    p = served.planted
    download = _get(served, f"/proof/{p.delivered_message}.json")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    proof = download.json()
    assert proof["message_id"] == str(p.delivered_message) and proof["proofs"]
    out = Path(str(tmp_path)) / "proof.json"
    out.write_bytes(download.content)
    checked = subprocess.run(
        [sys.executable, "-m", "cli.main", "audit", "check-proof", str(out),
         "--directory", str(p.folder / "directory.bin"), "--anchor", str(p.folder / "keys")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("valid") == len(proof["proofs"])
    assert _get(served, "/proof/00000000-0000-0000-0000-000000000000.json").status_code == 404


EXTERNAL = re.compile(
    r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I
)
"""A reference to another host: an absolute or protocol-relative URL in src, href, action or
a stylesheet's url(...)."""


def test_no_console_page_references_another_host(served: Served) -> None:
    p = served.planted
    for path in ("/", "/cases", f"/cases/{p.overdue_case}", f"/proof?message_id={p.lost_message}",
                 "/login", "/static/console.css"):  # fmt: skip
        body = _get(served, path).text
        assert not EXTERNAL.search(body), (path, EXTERNAL.search(body))
    csp = _get(served, "/").headers["content-security-policy"]
    assert "default-src 'none'" in csp


def test_lvvx_console_serves_with_dtvs_token_file_and_stops_on_sigint(served: Served) -> None:
    """The command: DT&V's token from the network's secrets/ by default; Ctrl-C stops it."""
    import os
    import signal
    import time

    from tests.unit.console.conftest import free_port

    p, port = served.planted, free_port()
    env = {k: v for k, v in os.environ.items() if k != "LVVX_CONSOLE_TOKEN"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "console", "--data", str(p.folder), "--port", str(port)],
        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(url + "/healthz", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {p.token}"}
        page = httpx.get(url + "/cases", headers=auth, timeout=10)
        assert page.status_code == 200 and str(p.lost_case) in page.text
        assert (
            httpx.get(url + "/cases", headers={"Authorization": "Bearer x"}, timeout=10).status_code
            == 401
        )
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err[-2000:]
    assert f"console on http://127.0.0.1:{port}/" in out


def test_lvvx_console_without_a_token_says_so(tmp_path: object) -> None:
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "console", "--data", str(Path(str(tmp_path)))],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2 and "error [" in done.stderr
