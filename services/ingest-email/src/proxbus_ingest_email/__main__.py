"""``proxbus-ingest-email``: run the service, or ``parse FILE.eml...`` to print events."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import proxbus_runtime

from .app import SERVICE, run
from .checks import connection_checks
from .classify import Rejection
from .intake import mail_to_event
from .settings import Settings


def parse_files(paths: list[str], site: str) -> int:
    """Print one JSON line per file: the event, or ``{"rejected": reason}``; exit code."""
    code = 0
    for name in paths:
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            print(json.dumps({"file": name, "error": str(exc)}), flush=True)
            code = 1
            continue
        result = mail_to_event(raw, site=site)
        if isinstance(result, Rejection):
            out = {"file": name, "rejected": result.reason, "detail": result.detail}
            print(json.dumps(out), flush=True)
        else:
            print(result.to_json().decode(), flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="proxbus-ingest-email",
        description="Proxmox notification mail (SMTP receiver / IMAP poller) to proxbus events.",
    )
    sub = parser.add_subparsers(dest="command")
    parse = sub.add_parser("parse", help="print the event JSON (or a rejection) for each file")
    parse.add_argument("files", nargs="+", metavar="FILE.eml")
    return proxbus_runtime.main(
        SERVICE,
        Settings,
        run,
        argv=argv,
        parser=parser,
        commands={"parse": lambda args, settings: parse_files(args.files, settings.site)},
        checks=connection_checks,
    )


if __name__ == "__main__":
    sys.exit(main())
