"""``proxbus-ingest-syslog [serve]`` runs the service; ``parse [FILE|-]`` shows what lines become."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from typing import BinaryIO, TextIO

import proxbus_runtime

from .app import SERVICE, run
from .frames import Frame
from .parse import Rejection
from .pipeline import Pipeline
from .settings import Settings


def parse_lines(lines: Iterable[bytes], settings: Settings, out: TextIO) -> int:
    """Print one JSON event or ``{"rejected": reason}`` per input line; number rejected."""
    pipeline = Pipeline(settings)
    limit = settings.syslog_max_line
    rejected = 0
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        frame = Frame(line[:limit], len(line) > limit)
        result = pipeline.event_or_rejection(frame)
        if isinstance(result, Rejection):
            rejected += 1
            out.write(json.dumps({"rejected": result.reason}) + "\n")
        else:
            out.write(result.to_json().decode() + "\n")
    return rejected


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")


def _parse(args: argparse.Namespace, settings: Settings) -> int:
    try:
        stream = _open(args.file)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    with stream:
        parse_lines(stream, settings, sys.stdout)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="proxbus-ingest-syslog", description="proxbus syslog receiver"
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service (default)")
    p = sub.add_parser("parse", help="print the event each raw syslog line becomes")
    p.add_argument("file", nargs="?", default="-", help="file of raw lines, - for stdin")
    return proxbus_runtime.main(
        SERVICE, Settings, run, argv=argv, parser=parser, commands={"parse": _parse}
    )


if __name__ == "__main__":
    sys.exit(main())
