"""Who may write through the console: tokens, login sessions and CSRF; no I/O.

Tokens use the gateway's ``name:scopes:secret`` format (``CONSOLE_TOKENS``, scopes joined with
``+``; ``read`` < ``operate`` < ``admin``). Only digests of the secrets are kept. A login sets
an HttpOnly SameSite=Strict cookie holding ``name|scopes|expiry`` signed with a per-process key
(a restart logs everyone out). Every form carries a CSRF token: the HMAC of a random per-browser
cookie, so a page on another origin can neither read nor forge it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeGuard

SCOPES = ("read", "operate", "admin")
WRITE_SCOPE = "operate"
SESSION_COOKIE = "proxbus_console_session"
CSRF_COOKIE = "proxbus_console_csrf"
SESSION_TTL = 12 * 3600.0
# Wrong tokens (login form or bearer header) from one address: this many within the window,
# then every token from it is refused (429) until the window has passed. The right token is
# refused too: answering it would tell a guesser when they hit.
LOGIN_FAILURES = 10
THROTTLE_WINDOW = 60.0
THROTTLE_ADDRESSES = 4096  # addresses remembered at most (the oldest is forgotten)
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_CSRF_COOKIE = re.compile(r"[0-9a-f]{32}")


class TokenFormatError(ValueError):
    """``CONSOLE_TOKENS`` is not a comma-separated list of ``name:scopes:secret``."""


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """``admin`` implies ``operate`` implies ``read``; unknown names are ignored."""
    rank = {s: i for i, s in enumerate(SCOPES)}
    top = max((rank[s] for s in scopes if s in rank), default=-1)
    return frozenset(SCOPES[: top + 1])


@dataclass(slots=True, frozen=True)
class ConsoleToken:
    name: str
    scopes: frozenset[str]
    secret_sha256: str = field(repr=False)

    def matches(self, secret: str) -> bool:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return hmac.compare_digest(digest, self.secret_sha256)


@dataclass(slots=True, frozen=True)
class Caller:
    """Who made a request and what they may do (``anonymous`` on loopback reads)."""

    name: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Caller("anonymous", frozenset())


def parse_console_tokens(value: str | None) -> list[ConsoleToken]:
    """``name:scopes:secret,...`` → tokens.

    Raises:
        TokenFormatError: an entry is malformed, a name repeats or has no known scope.
    """
    out: list[ConsoleToken] = []
    for entry in [x.strip() for x in (value or "").split(",") if x.strip()]:
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[2]:
            raise TokenFormatError("CONSOLE_TOKENS entries are name:scopes:secret")
        name, scope_text, secret = parts
        if not _NAME.match(name):
            raise TokenFormatError(f"CONSOLE_TOKENS: bad token name {name!r}")
        scopes = expand_scopes(s.strip() for s in scope_text.split("+"))
        if not scopes:
            raise TokenFormatError(
                f"CONSOLE_TOKENS: token {name!r} has no known scope (read, operate, admin)"
            )
        if any(t.name == name for t in out):
            raise TokenFormatError(f"CONSOLE_TOKENS: token name {name!r} is used twice")
        out.append(ConsoleToken(name, scopes, hashlib.sha256(secret.encode()).hexdigest()))
    return out


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the port on this machine."""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_TRUSTED_PROXIES = 256  # entries of CONSOLE_TRUSTED_PROXIES at most


class TrustedProxiesError(ValueError):
    """``CONSOLE_TRUSTED_PROXIES`` is not a comma-separated list of addresses or CIDRs."""


def parse_trusted_proxies(text: str | None) -> tuple[Network, ...]:
    """``CONSOLE_TRUSTED_PROXIES``: addresses or networks (``127.0.0.1``, ``10.0.0.0/8``,
    ``::1``, ``fd00::/8``), comma-separated; empty or unset: none (``X-Forwarded-For`` is
    never read). Host bits in a network are allowed (``10.1.2.3/8`` is ``10.0.0.0/8``).

    Raises:
        TrustedProxiesError: an entry that is no address or network, or too many entries.
    """
    entries = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(entries) > MAX_TRUSTED_PROXIES:
        raise TrustedProxiesError(
            f"CONSOLE_TRUSTED_PROXIES: {len(entries)} entries, at most {MAX_TRUSTED_PROXIES}"
        )
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            raise TrustedProxiesError(
                f"CONSOLE_TRUSTED_PROXIES: {entry[:64]!r} is not an address or a CIDR "
                "(e.g. 127.0.0.1,10.0.0.0/8,::1)"
            ) from None
    return tuple(out)


def _address(text: str) -> Address | None:
    """``text`` as an address (an IPv4-mapped IPv6 one as its IPv4), ``None`` if it is none."""
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address, trusted: tuple[Network, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in trusted)


def client_address(peer: str | None, forwarded: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """The client a request is from: its peer, or, when the peer is a trusted proxy, the
    right-most ``X-Forwarded-For`` address that is not a trusted proxy (nginx's ``real_ip``
    with ``real_ip_recursive on``, ngx_http_realip_module: each proxy appends the address it
    was reached from, so every entry left of the first untrusted one is the client's own
    word). All trusted: the left-most. An entry that is no address (a port, garbage) ends the
    walk at the trusted address right of it. ``forwarded``: every ``X-Forwarded-For`` header,
    in order. An untrusted peer's header is ignored: it cannot choose its own address."""
    current = peer or "?"
    if not trusted:
        return current
    addr = _address(current)
    if addr is None or not _trusted(addr, trusted):
        return current
    entries = [e for header in forwarded for e in header.split(",") if e.strip()]
    for entry in reversed(entries):
        found = _address(entry)
        if found is None:
            break
        addr = found
        if not _trusted(found, trusted):
            break
    return str(addr)


class Throttle:
    """Failed token attempts per remote address within ``THROTTLE_WINDOW``; bounded."""

    def __init__(
        self,
        limit: int = LOGIN_FAILURES,
        window: float = THROTTLE_WINDOW,
        addresses: int = THROTTLE_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window = window
        self.addresses = addresses
        self._failures: dict[str, list[float]] = {}

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(address, []) if now - t < self.window]
        if times:
            self._failures[address] = times
        else:
            self._failures.pop(address, None)
        return times

    def wait(self, address: str, now: float | None = None) -> float:
        """Seconds until ``address`` may try a token again (0: now)."""
        now = now or time.monotonic()
        times = self._recent(address, now)
        if len(times) < self.limit:
            return 0.0
        return max(1.0, self.window - (now - times[-self.limit]))

    def failed(self, address: str, now: float | None = None) -> None:
        now = now or time.monotonic()
        times = self._recent(address, now)
        self._failures.pop(address, None)  # re-inserted last: the dict's order is by use
        self._failures[address] = [*times, now][-self.limit :]
        while len(self._failures) > self.addresses:
            del self._failures[next(iter(self._failures))]


class Guard:
    """Token lookup, signed session cookies and CSRF tokens for one console process."""

    def __init__(self, tokens: list[ConsoleToken], *, key: bytes | None = None) -> None:
        self.tokens = tokens
        self._key = key or secrets.token_bytes(32)

    def lookup(self, secret: str) -> Caller | None:
        """The caller a token secret belongs to (every token is compared, constant time)."""
        found = None
        for token in self.tokens:
            if token.matches(secret):
                found = token
        return Caller(found.name, found.scopes) if found else None

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, caller: Caller, now: float | None = None) -> str:
        expiry = int((now or time.time()) + SESSION_TTL)
        payload = f"{caller.name}|{'+'.join(sorted(caller.scopes))}|{expiry}"
        encoded = base64.urlsafe_b64encode(payload.encode()).decode()
        return f"{encoded}.{self._sign(payload)}"

    def session_caller(self, cookie: str | None, now: float | None = None) -> Caller | None:
        """The caller of a valid, unexpired session cookie; ``None`` otherwise."""
        if not cookie or "." not in cookie or len(cookie) > 1024:
            return None
        encoded, signature = cookie.rsplit(".", 1)
        try:
            payload = base64.urlsafe_b64decode(encoded.encode()).decode()
            name, scopes, expiry = payload.split("|")
            expires = int(expiry)
        except ValueError:
            return None
        if not signature.isascii() or not hmac.compare_digest(self._sign(payload), signature):
            return None
        if expires < (now or time.time()):
            return None
        # A token removed from CONSOLE_TOKENS ends its sessions at the next restart (new key).
        return Caller(name, expand_scopes(scopes.split("+")))

    def flash_sig(self, message: str) -> str:
        """The signature that lets a page show ``message`` in its status line: only the
        console's own redirects carry one (a link cannot put its words there)."""
        return self._sign("flash|" + message)[:32]

    def flash_ok(self, message: str, sig: str) -> bool:
        return sig.isascii() and hmac.compare_digest(self.flash_sig(message), sig)

    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_hex(16)

    @staticmethod
    def csrf_cookie_ok(cookie: str | None) -> TypeGuard[str]:
        """Whether ``cookie`` is one ``new_csrf_cookie`` could have made (else a page sets a
        new one: a forged value, even non-ASCII, is never signed or compared)."""
        return cookie is not None and _CSRF_COOKIE.fullmatch(cookie) is not None

    def csrf_token(self, csrf_cookie: str) -> str:
        return self._sign("csrf|" + csrf_cookie)

    def csrf_ok(self, csrf_cookie: str | None, submitted: str | None) -> bool:
        # compare_digest raises on non-ASCII text: a remote party's byte must not make a 500.
        if not self.csrf_cookie_ok(csrf_cookie) or not submitted or not submitted.isascii():
            return False
        return hmac.compare_digest(self.csrf_token(csrf_cookie), submitted)
