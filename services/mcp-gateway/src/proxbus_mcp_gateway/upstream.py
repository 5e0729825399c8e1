"""The Proxmox API over HTTPS: one asyncio aiohttp session per endpoint (issue 17).

Replaces proxmoxer/requests in worker threads: the call runs on the event loop (no thread hop,
no per-request merging of session settings), connections are kept alive per endpoint, and the
wire format stays what proxmoxer sent:

- ``https://<host>:<port>/api2/json/<path>``; API token in ``Authorization`` as
  ``PVEAPIToken=user@realm!name=secret`` (PVE) or ``PBSAPIToken=user@realm!name:secret`` (PBS)
  (proxmoxer ``backends/https.py`` ``ProxmoxHTTPApiTokenAuth`` with ``core.SERVICES``'
  separators);
- GET/DELETE parameters in the query string, POST/PUT parameters form-encoded in the body; a
  list is sent as repeated fields (``command=ls&command=-l``, as pvesh and requests do);
  ``None`` values are left out, booleans sent as ``1``/``0``;
- an answer >= 400 raises :class:`ApiError` with the HTTP reason phrase (where Proxmox puts
  its message) and the JSON ``errors`` object; a 2xx answer returns its ``data`` member.

TLS: a pinned SHA-256 fingerprint (``aiohttp.Fingerprint``: the presented certificate must
match, the chain is not checked), a CA file (``VERIFY_SSL=/path``), the system trust store
(``VERIFY_SSL=true``; ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` are honoured as before), or
no verification (``VERIFY_SSL=false``). Proxy variables (``HTTPS_PROXY``, ``NO_PROXY``...) are
resolved once per endpoint. aiohttp is imported by the first call: the idle gateway does not
load it (``_deferred.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from pydantic_core import from_json

from .config import Endpoint

if TYPE_CHECKING:
    import aiohttp

MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""An answer larger than this is refused (bounded memory; ``/cluster/resources`` of a
2,000-guest cluster is about 1 MiB)."""
KEEPALIVE_SECONDS = 4.0
"""Idle connections are closed after this: below pveproxy's idle timeout (5 s by default,
pve-http-server ``src/PVE/APIServer/AnyEvent.pm``: ``$self->{timeout} = 5``), so a pooled
connection is rarely one the server is about to close."""
REUSE_ENTRIES = 64
"""GET answers remembered per endpoint (by URL) to reuse their decoded data..."""
REUSE_BUDGET_BYTES = 2 * 1024 * 1024
"""... holding at most this many answer bytes in all (the oldest are forgotten first); a
larger answer is decoded every time."""
# As requests' ``requote_uri``: reserved characters and existing %XX escapes stay as they are
# (a tool escapes a segment such as a volume ID itself; ``proxmox_api`` paths never hold "%").
_PATH_SAFE = "/!$%&'()*+,:;=@~-._"
# Proxmox's own error answers carry the message in the reason phrase (PVE::APIServer
# AnyEvent.pm ``error``); anything non-standard falls back to AnyEvent::HTTP's names.
_ANYEVENT_STATUS = {
    595: "Errors during connection establishment, proxy handshake",
    596: "Errors during TLS negotiation, request sending and header processing",
    597: "Errors during body receiving or processing",
    598: "User aborted request via on_header or on_body",
    599: "Other, usually nonretryable, errors (garbled URL etc.)",
}


class ApiError(Exception):
    """An error answer (HTTP >= 400) of the Proxmox API.

    ``status_message`` is the standard name of the status, ``content`` the reason phrase the
    server sent (Proxmox's message) and ``errors`` the JSON ``errors`` object (per-parameter
    messages), when the body has one.
    """

    def __init__(
        self, status_code: int, status_message: str, content: str, errors: Any = None
    ) -> None:
        self.status_code = status_code
        self.status_message = status_message
        self.content = content
        self.errors = errors
        super().__init__(f"{status_code} {status_message}: {content}".strip())


class AnswerTooLarge(ValueError):
    """The answer's body exceeded the session's limit (:data:`MAX_ANSWER_BYTES`)."""


class UpstreamSession:
    """One endpoint's HTTP client: built without I/O, connects on the first request."""

    def __init__(
        self,
        ep: Endpoint,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        reuse_entries: int = REUSE_ENTRIES,
        reuse_budget_bytes: int = REUSE_BUDGET_BYTES,
    ) -> None:
        self.endpoint = ep
        self.base_url = f"https://{ep.address}/api2/json"
        service, separator = ("PBS", ":") if ep.product == "pbs" else ("PVE", "=")
        token = f"{ep.user}!{ep.token_name}{separator}{ep.token_value}"
        self._headers = {
            "Authorization": f"{service}APIToken={token}",
            "Accept": "application/json",
        }
        self._form_headers = {
            **self._headers,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.max_answer_bytes = max_answer_bytes
        self._proxy: tuple[str | None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tls: Any = None
        self._answers: dict[str, tuple[bytes, Any]] = {}
        self._answer_bytes = 0
        self.reuse_entries = reuse_entries
        self.reuse_budget_bytes = reuse_budget_bytes

    @property
    def proxy(self) -> str | None:
        """The endpoint's proxy, read from the environment once (:func:`environment_proxy`)."""
        if self._proxy is None:
            self._proxy = (environment_proxy(self.endpoint),)
        return self._proxy[0]

    def tls(self) -> Any:
        """The ``ssl`` argument for aiohttp: a Fingerprint, an SSLContext or False."""
        if self._tls is None:
            self._tls = tls_for(self.endpoint)
        return self._tls

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and not session.closed and self._loop is loop:
            return session
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            ssl=self.tls(),
            keepalive_timeout=KEEPALIVE_SECONDS,
            ttl_dns_cache=60,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
            ),
            trust_env=False,  # proxies were resolved once (environment_proxy)
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )
        self._session, self._loop = session, loop
        return session

    async def request(self, method: str, path: str, params: dict[str, Any] | None) -> Any:
        """One API call; returns the answer's ``data``.

        Raises:
            ApiError: the server answered with an error status.
            AnswerTooLarge: the answer exceeded :data:`MAX_ANSWER_BYTES`.
            ValueError: the answer is not the API's JSON.
            aiohttp.ClientError, TimeoutError: connection, TLS or timeout failures.
        """
        from yarl import URL

        session = self._client()
        pairs = form_pairs(params)
        url = self.base_url + quote(path, safe=_PATH_SAFE)
        body: bytes | None = None
        headers = self._headers
        if method in ("GET", "DELETE"):
            if pairs:
                url += "?" + urlencode(pairs)
        elif pairs:
            body = urlencode(pairs).encode()
            headers = self._form_headers
        async with session.request(
            method, URL(url, encoded=True), data=body, headers=headers, proxy=self.proxy
        ) as resp:
            raw = await _read_bounded(resp, self.max_answer_bytes)
            status = resp.status
            if status >= 400:
                name = _status_name(status)
                raise ApiError(status, name, resp.reason or "", _errors_of(raw))
            if not 200 <= status <= 299:
                return None
        if method != "GET":
            return answer_data(raw)
        return self._decoded(url, raw)

    def _decoded(self, url: str, raw: bytes) -> Any:
        """A GET answer's data; the same object as last time when the bytes are the same.

        Polled reads (guest lists, status) mostly answer what they answered before: comparing
        the bytes (a memcmp) skips the JSON decoding and lets tools reuse what they derived
        from that object (``DerivedMemo``), with the read cache off too. Every call still
        reaches the API; answers are shared read-only, as the read cache shares them.
        """
        last = self._answers.get(url)
        if last is not None and last[0] == raw:
            return last[1]
        data = answer_data(raw)
        answers = self._answers
        if last is not None:
            del answers[url]
            self._answer_bytes -= len(last[0])
        if len(raw) <= self.reuse_budget_bytes:
            answers[url] = (raw, data)
            self._answer_bytes += len(raw)
            while len(answers) > self.reuse_entries or self._answer_bytes > self.reuse_budget_bytes:
                oldest = next(iter(answers))
                self._answer_bytes -= len(answers.pop(oldest)[0])
        return data

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    length = resp.content_length
    if length is not None and length > limit:
        raise AnswerTooLarge(f"answer of {length} bytes (limit {limit})")
    if length is not None:
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge(f"answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _status_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _ANYEVENT_STATUS.get(status, "")


def _errors_of(raw: bytes) -> Any:
    try:
        decoded = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:300] or None
    return decoded.get("errors") if isinstance(decoded, dict) else None


def answer_data(raw: bytes) -> Any:
    """The ``data`` member of an API answer.

    Raises:
        ValueError: not JSON, or not an object with ``data``.
    """
    decoded = from_json(raw)  # pydantic-core's parser: half the time of json.loads here
    if not isinstance(decoded, dict) or "data" not in decoded:
        raise ValueError("the answer has no 'data' member")
    return decoded["data"]


def form_pairs(params: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Parameters as (name, value) pairs: lists repeated, ``None`` left out, booleans 1/0."""
    out: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        for item in value if isinstance(value, list | tuple) else (value,):
            if item is None:
                continue
            out.append((name, str(int(item)) if isinstance(item, bool) else str(item)))
    return out


def environment_proxy(ep: Endpoint) -> str | None:
    """The proxy for ``https://<endpoint>`` from ``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY``
    (read once, as requests did per request)."""
    import urllib.request  # not at idle: it pulls in http.client and email

    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https") or proxies.get("all")
    if not proxy:
        return None
    # The stdlib's NO_PROXY matching (suffixes, ports, "*"); undocumented, so not in typeshed.
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if bypass(ep.address, proxies) or bypass(ep.host, proxies):
        return None
    return proxy


def tls_for(ep: Endpoint) -> Any:
    """aiohttp's ``ssl`` argument for an endpoint (pinned, CA file, system store or off)."""
    if ep.fingerprint:
        import aiohttp

        return aiohttp.Fingerprint(bytes.fromhex(ep.fingerprint))
    if ep.verify is False:
        return False
    if isinstance(ep.verify, str):
        return _context(ep.verify)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return _context(bundle) if bundle else ssl.create_default_context()


def _context(path: str) -> ssl.SSLContext:
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)
