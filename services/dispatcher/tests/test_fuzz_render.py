"""Hostile event fields through the notifiers' renderings (hypothesis, derandomized).

Everything an event carries came from a remote party: a 4 KB kind (the contract only asks for
a dotted lower-case name), control characters, markup. The Discord embed must stay inside
Discord's limits (over one, Discord answers 400 and the notification is dead-lettered: lost),
and the mail must build with its HTML part escaped.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from proxbus_dispatcher.notification import Notification
from proxbus_dispatcher.notifiers.discord import DiscordReceiver, discord_payload
from proxbus_dispatcher.notifiers.email import EmailReceiver, build_message
from proxbus_events import Event

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# docs.discord.com "Embed Limits": title 256, description 4096, 25 fields, field name 256,
# field value 1024, footer text 2048, and 6000 characters in all.
_EMBED_TOTAL = 6000

_MARKUP = st.sampled_from(
    ["<script>alert(1)</script>", "@everyone", "<@&1>", "**x**", "`", "\x00", "\x1b[2J", "\u202e",
     "&amp;", "]]>", '"><img src=x onerror=1>', "\r\n.\r\n", "=?utf-8?q?x?=", "é", "\ud7ff"]
)  # fmt: skip
_TEXT = st.lists(_MARKUP | st.text(max_size=20), max_size=20).map("".join)
_LONG_KIND = "a." + "b" * 4094


def _event(kind: str, title: str, message: str, node: str, site: str) -> Event:
    return Event(
        source="syslog",
        kind=kind,
        title=title or "t",
        message=message,
        node=node or None,
        site=site or "lab",
        severity="error",
    )


_EVENTS = st.builds(
    _event,
    kind=st.sampled_from(["backup.failed", "syslog.message", _LONG_KIND, "a." + "z" * 1100]),
    title=_TEXT | st.just("x" * 5000),
    message=_TEXT | st.just("y" * 70_000),
    node=_TEXT.map(lambda t: t[:253]) | st.just("n" * 253),
    site=st.text(min_size=1, max_size=128) | st.just("s" * 128),
)


def _notification(events: list[Event]) -> Notification:
    return Notification(id="d1", receiver="r", route="root", events=events)


def _embed_size(embed: dict[str, Any]) -> int:
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
        + len(embed.get("footer", {}).get("text", ""))
    )


@FUZZ
@given(events=st.lists(_EVENTS, min_size=1, max_size=3))
# Found by this test: the kind field carried the whole kind (Discord: at most 1024).
@example(events=[_event(_LONG_KIND, "t", "m", "pve1", "lab")])
# Found by this test: escaped for Discord markdown, a node and site of markup characters
# double in length, and with a full title, description and kind passed the 6000 total.
@example(events=[_event(_LONG_KIND, "x" * 300, "y" * 70_000, "*" * 253, "_" * 128)])
def test_a_discord_embed_stays_within_discords_limits(events: list[Event]) -> None:
    receiver = DiscordReceiver(name="d", type="discord", url="http://127.0.0.1:1/hook")
    payload = discord_payload(receiver, _notification(events))
    [embed] = payload["embeds"]
    assert 0 < len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096
    assert len(embed["fields"]) <= 25
    for field in embed["fields"]:
        assert 0 < len(field["name"]) <= 256
        assert 0 < len(field["value"]) <= 1024, field["name"]
    assert len(embed["footer"]["text"]) <= 2048
    assert _embed_size(embed) <= _EMBED_TOTAL
    assert "content" not in payload  # embeds never ping: no @everyone from an event


@FUZZ
@given(events=st.lists(_EVENTS, min_size=1, max_size=3))
def test_a_mail_builds_with_its_html_escaped(events: list[Event]) -> None:
    receiver = EmailReceiver.model_validate(
        {"name": "m", "type": "email", "host": "127.0.0.1", "from": "a@b.c", "to": ["d@e.f"]}
    )
    msg = build_message(receiver, _notification(events))
    raw = msg.as_bytes()
    assert b"\r\n\r\n" in raw or b"\n\n" in raw
    subject = msg["Subject"]
    assert "\n" not in str(subject)
    assert "\r" not in str(subject)
    html_part = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    html = html_part.get_content()
    assert "<script" not in html
    assert "<img" not in html


_MD_TEXT = st.lists(
    st.sampled_from(["*", "_", "`", "[", "]", "(", ")", "<", ">", "&", "#", "-", "+", "=", "!",
                     "|", "~", "\\", "1.", "2)", "   ", "http://x.example/", "&amp;", "<b>", "\n"])
    # CommonMark turns NUL into U+FFFD and a CR into a line ending, whatever the escaping
    | st.text(st.characters(blacklist_characters="\x00\r"), max_size=8),
    max_size=30,
).map("".join)  # fmt: skip


@FUZZ
@given(text=_MD_TEXT)
def test_md_text_renders_as_itself_in_commonmark(text: str) -> None:
    # What Gotify's clients do with a markdown message: nothing from an event is markup.
    import html

    from markdown_it import MarkdownIt
    from proxbus_dispatcher.templates import md

    flat = " ".join(text.split())
    rendered = MarkdownIt("commonmark").render(md(text))
    if not flat:
        assert rendered == ""
        return
    assert rendered.startswith("<p>"), rendered
    assert rendered.endswith("</p>\n"), rendered
    assert html.unescape(rendered[3:-5]) == flat


@FUZZ
@given(text=_MD_TEXT)
def test_md_block_keeps_every_line_and_column(text: str) -> None:
    import html

    from markdown_it import MarkdownIt
    from proxbus_dispatcher.templates import md_block

    body = text.strip("\n")
    rendered = MarkdownIt("commonmark").render(md_block(text))
    assert rendered.startswith("<pre><code>"), rendered
    inner = html.unescape(rendered[len("<pre><code>") : -len("</code></pre>\n")])
    assert inner == body + "\n"
