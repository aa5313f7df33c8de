"""The console's web application (FastAPI, server-rendered Jinja2 templates): pages that work
without JavaScript and load nothing but the console's own stylesheet — gateways and DT&V run
in closed networks.

    GET  /                     the network: each chain, the findings live, the checkpoints
    GET  /cases?step=&overdue=1&escalation=1   the cases, filtered
    GET  /cases/{case_id}      one case's timeline, from audit metadata
    GET  /proof?message_id=    a message's inclusion proofs
    GET  /proof/{id}.json      … to download (what `lvvx audit prove` writes)
    GET  /login, POST /login, POST /logout
    GET  /healthz              for the platform: no token

Every page but /login and /healthz needs DT&V's token: ``Authorization: Bearer <token>``
(scripts), or the session cookie that posting the token to /login sets (a browser without
JavaScript cannot add a header). The cookie holds an HMAC of the token, not the token; it is
HttpOnly and SameSite=Strict, so another site can neither read it nor make the browser send
it along.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from broker.caseflow import REST_PERIOD, Step
from broker.console._state import CaseFilter, ConsoleState

COOKIE = "lvvx_console"
SESSION_TAG = b"LVVX-CONSOLE-SESSION-V1"
"""What the session cookie's HMAC is over: the cookie stands for the token without being it."""

MAX_LOGIN_BYTES = 4096
"""A login form holds one token: a larger body is refused before it is parsed."""

REFRESH_S = 10
"""The network page reloads itself this often (a meta refresh, not a script): findings live."""

NO_PERSONAL_DATA = "No personal data: built from audit metadata only."
"""What every page says: the console reads audit events, which carry ids, types, parties,
times and hashes, never a name, V-number or dossier text (DESIGN §1)."""

_CSS = resources.files("broker.console").joinpath("static/console.css").read_bytes()


def session_value(token: str) -> str:
    return hmac.new(token.encode(), SESSION_TAG, hashlib.sha256).hexdigest()


def create_console_app(state: ConsoleState, *, token: str, title: str = "DT&V console") -> FastAPI:
    """The console over ``state``; access with ``token``."""
    if not token:
        raise ValueError("the console needs a token")
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    templates = Environment(
        loader=PackageLoader("broker.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.filters["when"] = _when
    templates.filters["days"] = _duration
    session = session_value(token)

    def allowed(request: Request) -> bool | None:
        """True with the token (header) or session (cookie); False with a wrong header;
        None with neither."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, credential = header.partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(
                credential.strip().encode(), token.encode()
            )
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and hmac.compare_digest(cookie.encode(), session.encode()):
            return True
        return None

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(
            title=title, notice=NO_PERSONAL_DATA, state=state, totals=state.totals(),
            path=request.url.path, now=state.clock(), **context,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        if request.url.path in _OPEN:
            response: Response = await call_next(request)
            return response
        verdict = allowed(request)
        if verdict is None:  # a browser without a session: the login form, then back here
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        if verdict is False:
            return PlainTextResponse("missing or wrong bearer token", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        response = await call_next(request)
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok" if state.ready else "waiting for the first report")

    @app.get("/static/console.css", include_in_schema=False)
    async def css() -> Response:
        return Response(_CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return page(request, "login.html", next=_local(next), failed=False)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_LOGIN_BYTES:
            return PlainTextResponse("login form too large", status_code=413)
        form = parse_qs(body.decode("utf-8", "replace"))
        given, target = form.get("token", [""])[0].strip(), _local(form.get("next", ["/"])[0])
        if not hmac.compare_digest(given.encode(), token.encode()):
            return page(request, "login.html", status=401, next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")  # fmt: skip
        return response

    @app.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    async def network(request: Request) -> HTMLResponse:
        return page(request, "network.html", chains=state.chains(), findings=state.findings(),
                    resolved=list(state.resolved), refresh=REFRESH_S)  # fmt: skip

    @app.get("/cases", response_class=HTMLResponse)
    async def cases(request: Request, step: str = "", overdue: str = "",
                    escalation: str = "") -> HTMLResponse:  # fmt: skip
        chosen = Step.__members__.get(step.upper()) if step else None
        wanted = CaseFilter(chosen, overdue == "1", escalation == "1")
        return page(request, "cases.html", cases=state.cases(wanted), wanted=wanted,
                    steps=[s for s in Step if s is not Step.NONE])  # fmt: skip

    @app.get("/cases/{case_id}", response_class=HTMLResponse)
    async def case(request: Request, case_id: str) -> HTMLResponse:
        parsed = _uuid(case_id)
        view = state.case(parsed) if parsed else None
        if parsed is None or view is None:
            return page(request, "missing.html", status=404, what=f"case {case_id}")
        return page(request, "case.html", case=view, events=state.timeline(parsed),
                    rest_period=REST_PERIOD)  # fmt: skip

    @app.get("/proof", response_class=HTMLResponse)
    async def proof_page(request: Request, message_id: str = "") -> HTMLResponse:
        if not message_id:
            return page(request, "proof.html", message_id="", proof=None, asked=False)
        parsed = _uuid(message_id)
        proof = state.proof(parsed) if parsed else None
        return page(request, "proof.html", status=200 if proof else 404,
                    message_id=message_id, proof=proof, asked=True)  # fmt: skip

    @app.get("/proof/{name}")
    async def proof_download(name: str) -> Response:
        parsed = _uuid(name.removesuffix(".json"))
        proof = state.proof(parsed) if parsed else None
        if proof is None:
            return PlainTextResponse("no audit event mentions that message", status_code=404)
        return Response(
            json.dumps(proof, indent=2) + "\n", media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="proof-{parsed}.json"', **_HEADERS},
        )  # fmt: skip

    return app


_OPEN = frozenset({"/login", "/healthz", "/static/console.css"})
"""Paths without a token: the login form, the health check and the login form's stylesheet."""

_HEADERS = {
    # nothing but the console itself: no script, no frame, no outside host (issue 17 §5)
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _local(target: str) -> str:
    """Where to go after the login: a path of the console, never another site."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _duration(seconds: float) -> str:
    """A time in a step: days past a day, else hours, minutes or seconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
