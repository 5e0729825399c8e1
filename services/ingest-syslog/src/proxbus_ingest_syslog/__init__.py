"""proxbus-ingest-syslog: syslog receiver (UDP/TCP/TLS), parsers and the Proxmox classifier."""

from .app import SyslogService, run
from .classify import RULES, Classification, Classifier, classify
from .filters import LineFilter, SourceLimiter
from .frames import Frame, SyslogFramer
from .normalize import NodeNamer, build_event
from .parse import Rejection, SyslogMessage, parse_syslog
from .pipeline import Pipeline
from .settings import Settings

__all__ = [
    "RULES",
    "Classification",
    "Classifier",
    "Frame",
    "LineFilter",
    "NodeNamer",
    "Pipeline",
    "Rejection",
    "Settings",
    "SourceLimiter",
    "SyslogFramer",
    "SyslogMessage",
    "SyslogService",
    "build_event",
    "classify",
    "parse_syslog",
    "run",
]
