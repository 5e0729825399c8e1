"""Console tokens, sessions and CSRF tokens (no I/O)."""

from __future__ import annotations

import base64

import pytest
from proxbus_dispatcher.console.auth import (
    Caller,
    Guard,
    TrustedProxiesError,
    client_address,
    is_loopback,
    parse_console_tokens,
    parse_trusted_proxies,
)
from proxbus_dispatcher.settings import Settings


def guard() -> Guard:
    return Guard(parse_console_tokens("alice:operate:secret-a,bob:read:secret-b"), key=b"k" * 32)


def test_loopback_hosts_are_recognised_and_others_are_not() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "pve.example", ""):
        assert not is_loopback(host), host


def test_session_cookie_round_trips_and_a_tampered_one_is_refused() -> None:
    g = guard()
    caller = g.lookup("secret-a")
    assert caller == Caller("alice", frozenset({"read", "operate"}))
    cookie = g.session_cookie(caller, now=1000.0)
    assert g.session_caller(cookie, now=1001.0) == caller
    payload, signature = cookie.rsplit(".", 1)
    forged = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload).replace(b"operate", b"admin")
    ).decode()
    assert g.session_caller(f"{forged}.{signature}", now=1001.0) is None
    assert g.session_caller(cookie, now=1000.0 + 13 * 3600) is None  # expired
    assert Guard(g.tokens).session_caller(cookie, now=1001.0) is None  # another process' key
    for junk in ("", "no-dot", "a.b", "!!!.???", "x" * 5000):
        assert g.session_caller(junk, now=1001.0) is None


def test_csrf_token_is_bound_to_its_cookie() -> None:
    g = guard()
    cookie = g.new_csrf_cookie()
    token = g.csrf_token(cookie)
    assert g.csrf_ok(cookie, token)
    assert not g.csrf_ok(g.new_csrf_cookie(), token)
    assert not g.csrf_ok(cookie, None)
    assert not g.csrf_ok(None, token)


def test_unknown_secret_is_nobody() -> None:
    g = guard()
    assert g.lookup("secret-c") is None
    assert g.lookup("") is None
    assert g.lookup("secret-b") == Caller("bob", frozenset({"read"}))


def test_non_ascii_csrf_token_or_cookie_signature_is_refused_not_raised() -> None:
    # hmac.compare_digest raises TypeError on non-ASCII str: that was a 500 on every page.
    g = guard()
    cookie = g.new_csrf_cookie()
    assert not g.csrf_ok(cookie, "é" * 64)
    assert not g.csrf_ok("é", g.csrf_token(cookie))
    assert not g.csrf_ok(cookie, "\udce9")  # a header byte aiohttp could not decode
    session = g.session_cookie(Caller("alice", frozenset({"operate"})), now=1000.0)
    payload = session.rsplit(".", 1)[0]
    for signature in ("é" * 64, "\udce9"):
        assert g.session_caller(f"{payload}.{signature}", now=1001.0) is None


def test_templates_and_static_files_load_nothing_from_another_site() -> None:
    """No CDN: the console works offline (its CSP also allows this origin only)."""
    import re
    from pathlib import Path

    import proxbus_dispatcher.console as console

    root = Path(console.__file__).parent
    files = [*root.glob("templates/*.html"), *root.glob("static/*")]
    assert len(files) >= 10
    off_site = re.compile(r"""(https?:)?//[A-Za-z0-9]|@import|url\(""")
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if path.suffix == ".js" and line.lstrip().startswith("//"):
                continue  # a comment line
            assert not off_site.search(line), f"{path.name}:{n}: {line.strip()}"


def test_trusted_proxies_parse_addresses_and_networks_and_refuse_anything_else() -> None:
    nets = parse_trusted_proxies(" 127.0.0.1, 10.1.2.3/8 ,::1,[fd00::1], fd00::/8,")
    assert [str(n) for n in nets] == [
        "127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::1/128", "fd00::/8"
    ]  # fmt: skip
    assert parse_trusted_proxies(None) == parse_trusted_proxies("") == ()
    for bad in ("proxy.example", "10.0.0.0/33", "127.0.0.1:8080", "*"):
        with pytest.raises(TrustedProxiesError, match="CONSOLE_TRUSTED_PROXIES"):
            parse_trusted_proxies(bad)
    with pytest.raises(TrustedProxiesError, match="at most"):
        parse_trusted_proxies(",".join(["127.0.0.1"] * 257))
    with pytest.raises(ValueError, match="CONSOLE_TRUSTED_PROXIES"):
        Settings(console_trusted_proxies="10.0.0.0/8,nginx")


def test_the_client_is_the_right_most_forwarded_address_no_trusted_proxy_added() -> None:
    proxies = parse_trusted_proxies("127.0.0.1,10.0.0.0/8,fd00::/8")
    # nothing trusted (the default): the header is never read
    assert client_address("127.0.0.1", ["203.0.113.9"], ()) == "127.0.0.1"
    # an untrusted peer's header is its own word: ignored
    assert client_address("192.0.2.7", ["203.0.113.9"], proxies) == "192.0.2.7"
    # a trusted proxy: the address it was reached from, which it appended last
    assert client_address("127.0.0.1", ["203.0.113.9"], proxies) == "203.0.113.9"
    # the client's own forged entries are left of it and never reached
    assert client_address("127.0.0.1", ["1.1.1.1, 2.2.2.2, 203.0.113.9"], proxies) == (
        "203.0.113.9"
    )
    # a chain of trusted proxies is walked through (real_ip_recursive), headers in order
    assert client_address("127.0.0.1", ["1.1.1.1, 203.0.113.9", "10.0.0.5"], proxies) == (
        "203.0.113.9"
    )
    # every entry trusted: the left-most
    assert client_address("127.0.0.1", ["10.0.0.9, 10.0.0.5"], proxies) == "10.0.0.9"
    # no header from a trusted proxy: the proxy itself
    assert client_address("127.0.0.1", [], proxies) == "127.0.0.1"
    # an entry that is no address ends the walk at the trusted address right of it
    assert client_address("127.0.0.1", ["203.0.113.9, junk, 10.0.0.5"], proxies) == "10.0.0.5"
    assert client_address("127.0.0.1", ["203.0.113.9:4711"], proxies) == "127.0.0.1"
    # IPv6, bracketed, and an IPv4-mapped peer
    assert client_address("fd00::2", ["[2001:db8::1]"], proxies) == "2001:db8::1"
    assert client_address("::ffff:127.0.0.1", ["198.51.100.1"], proxies) == "198.51.100.1"
    # no peer at all (a closed transport)
    assert client_address(None, ["198.51.100.1"], proxies) == "?"
