"""HTTPS listener for one API (PVE or PBS): auth, faults, validation, dispatch."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from .auth import AuthStore, Principal
from .errors import ApiError
from .faults import FaultRules
from .router import Router
from .schema import SchemaIndex
from .tls import TlsMaterial

if TYPE_CHECKING:
    from .simulator import Simulator

log = logging.getLogger(__name__)
_PREFIX = "/api2/json"
_WRITE = frozenset({"POST", "PUT", "DELETE"})


@dataclass(slots=True)
class Call:
    """Everything a handler needs about one authenticated, validated request."""

    sim: Simulator
    principal: Principal
    params: dict[str, Any]
    method: str
    path: str
    extra: dict[str, Any] = field(default_factory=dict)

    def require(self, path: str, *privs: str, any_of: bool = False) -> None:
        """Raise the Proxmox 403 unless the caller holds ``privs`` on ``path``."""
        have = self.principal.privs(path)
        if any_of:
            if not have.intersection(privs):
                raise ApiError(403, f"Permission check failed ({path}, {'|'.join(privs)})")
            return
        for p in privs:
            if p not in have:
                raise ApiError(403, f"Permission check failed ({path}, {p})")


@dataclass(frozen=True, slots=True)
class RawJson:
    """Pre-encoded JSON for ``data`` (lets hot handlers cache their serialized answer)."""

    raw: bytes


@dataclass(slots=True)
class RequestRecord:
    """One served request, for tests asserting what reached the simulator."""

    time: float
    method: str
    path: str
    status: int


def _multi(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form or query pairs as a dict: one value as a string, a repeated key as a list."""
    out: dict[str, Any] = {}
    for key, value in items:
        if key not in out:
            out[key] = value
        elif isinstance(out[key], list):
            out[key].append(value)
        else:
            out[key] = [out[key], value]
    return out


def _reason(text: str) -> str:
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    return clean[:400] or "error"


def _substitute(template: str, params: Mapping[str, Any]) -> str:
    out = template
    for key, value in params.items():
        out = out.replace("{" + key + "}", str(value))
    return out


@dataclass(eq=False, kw_only=True)
class ApiServer:
    """One HTTPS API endpoint that can be stopped and started again on the same port."""

    service: str
    sim: Simulator
    router: Router
    schema: SchemaIndex
    auth: AuthStore
    tls: TlsMaterial
    host: str
    port: int
    faults: FaultRules = field(default_factory=FaultRules, init=False)
    request_count: int = field(default=0, init=False)
    request_log: deque[RequestRecord] = field(
        default_factory=lambda: deque(maxlen=2000), init=False
    )
    server_header: str = field(init=False)
    _runner: web.ServerRunner | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        is_pve = self.service == "PVE"
        self.server_header = "pve-api-daemon/3.0" if is_pve else "proxmox-backup-api/1.0"

    @property
    def running(self) -> bool:
        """Whether the listener accepts connections."""
        return self._runner is not None

    @property
    def url(self) -> str:
        """Base URL (``https://host:port``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    async def start(self) -> None:
        """Bind the listener (port 0 picks a free port, kept for later restarts)."""
        if self._runner is not None:
            return
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=0.5, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self.port, ssl_context=self.tls.server_context(), reuse_address=True
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        """Close the listener and every open connection (clients then see refusals)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _respond(
        self, status: int, reason: str, body: bytes, extra_headers: bool = True
    ) -> web.Response:
        headers = {
            "Server": self.server_header,
            "Cache-Control": "max-age=0",
            "Pragma": "no-cache",
            "Expires": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
        }
        if body and extra_headers:
            headers["Content-Type"] = "application/json;charset=UTF-8"
        return web.Response(status=status, reason=_reason(reason), body=body, headers=headers)

    def _error(self, exc: ApiError) -> web.Response:
        if exc.status == 401:
            return self._respond(401, exc.reason, b"")
        if self.service == "PBS":
            # proxmox-rest-server formatter.rs json_format_error: the body is the error's
            # text, the status line its standard phrase; parameter errors as proxmox-schema
            # ParameterError displays them.
            text = exc.reason
            if exc.errors:
                text = "parameter verification errors\n\n" + "".join(
                    f"parameter '{k}': {str(v).rstrip()}\n" for k, v in exc.errors.items()
                )
            try:
                phrase = HTTPStatus(exc.status).phrase
            except ValueError:
                phrase = "error"
            return self._respond(exc.status, phrase, text.encode())
        payload: dict[str, Any] = {"data": None}
        if exc.errors:
            payload["errors"] = exc.errors
        return self._respond(exc.status, exc.reason, json.dumps(payload).encode())

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.request_count += 1
        path = request.path
        faults = self.faults
        if faults.drops and faults.take_drop(path.removeprefix(_PREFIX)):
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        delay = faults.delay_for(path.removeprefix(_PREFIX)) if faults.latency else 0.0
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            rule = faults.take_error(path.removeprefix(_PREFIX)) if faults.errors else None
            if rule is not None:
                raise ApiError(rule.status, rule.reason)
            resp = await self._dispatch(request)
        except ApiError as exc:
            resp = self._error(exc)
        except Exception as exc:
            log.exception("handler failed for %s %s", request.method, path)
            resp = self._error(ApiError(500, f"internal error: {type(exc).__name__}"))
        self.request_log.append(RequestRecord(time.time(), request.method, path, resp.status))
        return resp

    async def _params(self, request: web.BaseRequest) -> dict[str, Any]:
        # A repeated key is an array (``command=ls&command=-l``, as proxmoxer and pvesh send
        # array parameters; pve-http-server decode_urlencoded keeps every value); for a
        # parameter that is not an array the schema check joins them with NUL, as PVE does.
        params: dict[str, Any] = _multi(request.query.items())
        if request.method in _WRITE and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise ApiError(
                        400, "Parameter verification failed.", {"body": "invalid JSON"}
                    ) from None
                if not isinstance(body, dict):
                    raise ApiError(
                        400, "Parameter verification failed.", {"body": "expected a JSON object"}
                    )
                params.update(body)
            else:
                params.update(
                    _multi((k, v) for k, v in (await request.post()).items() if isinstance(v, str))
                )
        return params

    def _authenticate(self, request: web.BaseRequest) -> Principal:
        header = request.headers.get("Authorization")
        if header:
            principal = self.auth.from_header(header)
            if principal is None:
                raise ApiError(401, "authentication failure")
            return principal
        ticket = request.cookies.get(f"{self.service}AuthCookie")
        if not ticket:
            raise ApiError(401, "No ticket")
        principal = self.auth.from_cookie(ticket)
        if principal is None:
            raise ApiError(401, "authentication failure")
        if (
            request.method in _WRITE
            and request.headers.get("CSRFPreventionToken") != principal.csrf
        ):
            raise ApiError(401, "Permission denied - invalid csrf token")
        return principal

    async def _dispatch(self, request: web.BaseRequest) -> web.Response:
        method, path = request.method, request.path
        if not path.startswith(_PREFIX + "/"):
            raise ApiError(501, f"Method '{method} {path}' not implemented")
        api_path = path[len(_PREFIX) :]
        # Match on the raw path: an encoded slash (%2F) stays inside its segment, as a
        # volume id such as ``local:backup/vzdump-...`` must.
        raw_segments = request.raw_path.split("?", 1)[0][len(_PREFIX) :].strip("/").split("/")
        route, path_params = self.router.resolve_segments(
            method, [unquote(seg) for seg in raw_segments]
        )
        if route is None:
            raise ApiError(501, f"Method '{method} {api_path}' not implemented")
        principal = Principal("anonymous", (), {}) if route.public else self._authenticate(request)
        ms = self.schema.method(route.path, method)
        if ms is None:
            raise ApiError(501, f"Method '{method} {api_path}' not implemented")
        if (
            "node" in path_params
            and self.service == "PVE"
            and self.schema.data[route.path][method].get("proxyto") == "node"
        ):
            self.sim.check_node_reachable(path_params["node"])
        raw = await self._params(request)
        raw.update(path_params)
        params = ms.validate(raw)
        if not route.public:
            self._check_permissions(ms.permissions, principal, params)
        if (
            self.service == "PVE"
            and method in _WRITE
            and not route.public
            and not self.sim.lab.quorate
        ):
            raise ApiError(500, "cluster not ready - no quorum?")
        call = Call(self.sim, principal, params, method, api_path)
        data = await route.handler(call)
        if isinstance(data, RawJson):
            return self._respond(200, "OK", b'{"data":' + data.raw + b"}")
        payload = {"data": data, **call.extra}
        return self._respond(200, "OK", json.dumps(payload, separators=(",", ":")).encode())

    def _check_permissions(
        self, perm: Mapping[str, Any], principal: Principal, params: Mapping[str, Any]
    ) -> None:
        check = perm.get("check")
        if isinstance(check, list) and check and check[0] == "perm":
            acl_path = _substitute(str(check[1]), params)
            privs = [str(p) for p in check[2]]
            any_of = len(check) > 4 and check[3] == "any" and bool(check[4])
            have = principal.privs(acl_path)
            missing = [p for p in privs if p not in have]
            if (any_of and len(missing) == len(privs)) or (not any_of and missing):
                shown = "|".join(privs) if any_of else missing[0]
                raise ApiError(403, f"Permission check failed ({acl_path}, {shown})")
        elif isinstance(check, dict) and "path" in check:
            acl_path = "/" + "/".join(_substitute(str(s), params) for s in check["path"])
            have = principal.privs(acl_path)
            privs = [str(p) for p in check.get("privs", [])]
            ok = (
                any(p in have for p in privs)
                if check.get("partial")
                else all(p in have for p in privs)
            )
            if not ok:
                raise ApiError(403, "permission check failed")
        for sub in perm.get("and", []) if isinstance(perm.get("and"), list) else []:
            self._check_permissions(sub, principal, params)
