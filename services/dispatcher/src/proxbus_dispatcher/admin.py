"""Admin commands: ``dlq list|replay`` and ``silence add|list|expire``.

``cli_main(argv)`` is what ``proxbus-dispatcher dlq ...`` / ``silence ...`` run and what the
main ``proxbus`` CLI forwards ``proxbus dlq ...`` / ``proxbus silence ...`` to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta

from nats.js import JetStreamContext
from proxbus_events import Matcher, Silence
from proxbus_runtime import SilenceStore, configure_logging, connect_nats, ensure_streams
from pydantic import ValidationError

from .dlq import dlq_list, dlq_replay
from .durations import parse_duration
from .settings import Settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="proxbus", description="proxbus dead letters and silences")
    sub = p.add_subparsers(dest="group", required=True)
    dlq = sub.add_parser("dlq", help="dead-lettered deliveries").add_subparsers(
        dest="cmd", required=True
    )
    ls = dlq.add_parser("list", help="list dead letters")
    ls.add_argument("--receiver", help="only this receiver")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    rp = dlq.add_parser("replay", help="re-enqueue dead letters and remove them from the DLQ")
    rp.add_argument("receiver")
    rp.add_argument("--id", dest="ids", action="append", help="delivery id or DLQ seq (repeatable)")

    sil = sub.add_parser("silence", help="silences").add_subparsers(dest="cmd", required=True)
    add = sil.add_parser(
        "add", help="add a silence: proxbus silence add 'node=pve1' 'kind=vm.*' -d 2h"
    )
    add.add_argument("matchers", nargs="+", help="e.g. severity<=warning kind=vm.* node=pve1")
    add.add_argument("-d", "--duration", default="2h", help="e.g. 30m, 2h, 1d (default 2h)")
    add.add_argument("-a", "--author", default="cli")
    add.add_argument("-c", "--comment", default="")
    sls = sil.add_parser("list", help="list active silences")
    sls.add_argument("--all", action="store_true", help="include expired ones")
    sls.add_argument("--json", action="store_true")
    exp = sil.add_parser("expire", help="end a silence now")
    exp.add_argument("id")
    return p


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    # One attempt per server: nats-py retries a first connect forever unless this is >= 1.
    nc = await connect_nats(
        settings, name="proxbus-admin", allow_reconnect=False, max_reconnect_attempts=1
    )
    try:
        js = nc.jetstream(domain=settings.nats_js_domain, timeout=5)
        await ensure_streams(js, settings.stream_limits())
        if args.group == "dlq":
            return await _dlq(args, js)
        return await _silence(args, js)
    finally:
        await nc.close()


async def _dlq(args: argparse.Namespace, js: JetStreamContext) -> int:
    if args.cmd == "list":
        entries = await dlq_list(js, args.receiver)
        for e in entries:
            if args.json:
                print(json.dumps({"seq": e.seq, **e.letter.model_dump(mode="json", by_alias=True)}))
            else:
                n = e.letter.notification
                title = n.first["title"]
                print(
                    f"{e.seq}\t{e.letter.receiver}\t{e.letter.delivery_id}\t{e.letter.attempts}x"
                    f"\t{e.letter.dead_at:%Y-%m-%d %H:%M:%S}\t{title[:60]}\t{e.letter.error[:120]}"
                )
        if not args.json:
            print(f"{len(entries)} dead letter(s)", file=sys.stderr)
        return 0
    replayed = await dlq_replay(js, args.receiver, args.ids)
    print(f"replayed {len(replayed)} dead letter(s) to {args.receiver}")
    return 0 if replayed or not args.ids else 1


async def _silence(args: argparse.Namespace, js: JetStreamContext) -> int:
    store = await SilenceStore.open(js)
    if args.cmd == "add":
        matchers = list(args.matchers)
        silence = Silence.for_duration(
            matchers, timedelta(seconds=parse_duration(args.duration)), args.author, args.comment
        )
        await store.add(silence)
        print(silence.id)
        return 0
    if args.cmd == "list":
        for s in await store.list(include_expired=args.all):
            if args.json:
                print(s.model_dump_json())
            else:
                ms = " ".join(str(m) for m in s.matchers)
                print(f"{s.id}\t{s.ends_at:%Y-%m-%d %H:%M:%S}Z\t{s.created_by}\t{ms}\t{s.comment}")
        return 0
    expired = await store.expire(args.id)
    if expired is None:
        print(f"no silence {args.id}", file=sys.stderr)
        return 1
    print(f"expired {expired.id}")
    return 0


def _matcher(text: str) -> Matcher:
    try:
        return Matcher.parse(text)
    except ValidationError as exc:
        raise ValueError(f"invalid matcher {text!r}: {exc.errors()[0]['msg']}") from None
    except ValueError as exc:
        raise ValueError(f"invalid matcher {text!r}: {exc}") from None


def cli_main(argv: list[str]) -> int:
    """``dlq list|replay`` and ``silence add|list|expire``; exit code (2 = usage error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.group == "silence" and args.cmd == "add":
        try:
            args.matchers = [_matcher(m) for m in args.matchers]
            parse_duration(args.duration)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    configure_logging("ERROR")
    try:
        return asyncio.run(_run(args, Settings()))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
