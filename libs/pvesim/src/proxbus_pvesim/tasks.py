"""Simulated worker tasks with real UPIDs, logs and bounded per-node history."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import TaskFailure

log = logging.getLogger(__name__)

PVE_UPID = re.compile(
    r"UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):"
    r"(?P<pstart>[0-9A-Fa-f]{8}):(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s]+):"
    r"(?P<id>[^:\s]*):(?P<user>[^:\s]+):"
)
PBS_UPID = re.compile(
    r"UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):"
    r"(?P<pstart>[0-9A-Fa-f]{8,9}):(?P<task_id>[0-9A-Fa-f]{8,16}):(?P<starttime>[0-9A-Fa-f]{8}):"
    r"(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):"
)

FinishFn = Callable[["Task"], int]
Listener = Callable[["Task"], None]


@dataclass(slots=True)
class Task:
    """One worker task; ``exitstatus`` is None while running."""

    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    task_id: int | None = None
    endtime: int | None = None
    exitstatus: str | None = None
    log: list[str] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None
    on_stop: Callable[[], None] | None = None  # the worker's cleanup when it is interrupted

    @property
    def running(self) -> bool:
        """Whether the task has not finished yet."""
        return self.exitstatus is None

    @property
    def failed(self) -> bool:
        """Whether the task ended with an error (not OK, not warnings)."""
        return (
            self.exitstatus is not None
            and self.exitstatus != "OK"
            and not self.exitstatus.startswith("WARNINGS")
        )

    def _identity(self) -> dict[str, Any]:
        """The UPID's fields, common to the task list and the task status."""
        d: dict[str, Any] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user.split("!")[0],
        }
        if "!" in self.user:
            d["tokenid"] = self.user.split("!", 1)[1]
        return d

    def as_list_item(self) -> dict[str, Any]:
        """Entry as in ``/nodes/{node}/tasks`` and ``/cluster/tasks``."""
        d = self._identity()
        if self.task_id is not None:
            d["worker_type"], d["worker_id"] = d.pop("type"), d.pop("id")
        if self.exitstatus is not None:
            d["endtime"], d["status"] = self.endtime, self.exitstatus
        return d

    def as_status(self) -> dict[str, Any]:
        """Body of ``/nodes/{node}/tasks/{upid}/status``."""
        d = self._identity()
        d["status"] = "running" if self.running else "stopped"
        if self.exitstatus is not None:
            d["exitstatus"] = self.exitstatus
            if self.task_id is not None:
                d["endtime"] = self.endtime
        return d


class TaskManager:
    """Starts tasks, finishes them after simulated time and keeps a ring buffer per node."""

    def __init__(
        self,
        service: str,
        durations: dict[str, float],
        *,
        instant: bool = False,
        per_node: int = 1000,
    ) -> None:
        self.service = service
        self.durations = durations
        self.instant = instant
        self.per_node = per_node
        self.by_node: dict[str, deque[Task]] = {}
        self.index: dict[str, Task] = {}
        self.on_start: list[Listener] = []
        self.on_end: list[Listener] = []
        self._pid = 0x1000 + (os.getpid() % 0x1000) * 16
        self._task_seq = 0
        self._pstart = int(time.monotonic() * 100) & 0xFFFFFF

    def duration(self, task_type: str) -> float:
        """Simulated run time of a task type (0 in instant mode)."""
        if self.instant:
            return 0.0
        return self.durations.get(task_type, self.durations.get("default", 2.0))

    def start(
        self,
        node: str,
        task_type: str,
        task_id: str,
        user: str,
        finish: FinishFn,
        begin: list[str] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> Task:
        """Create a running task; ``finish`` runs after the simulated duration, ``on_stop``
        when it is interrupted instead (the worker's cleanup, e.g. removing a guest lock)."""
        self._pid += 1
        now = int(time.time())
        if self.service == "PBS":
            self._task_seq += 1
            upid = (
                f"UPID:{node}:{self._pid:08X}:{self._pstart:08X}:{self._task_seq:08X}:"
                f"{now:08X}:{task_type}:{task_id}:{user}:"
            )
        else:
            upid = (
                f"UPID:{node}:{self._pid:08X}:{self._pstart:08X}:{now:08X}:"
                f"{task_type}:{task_id}:{user}:"
            )
        task = Task(
            upid,
            node,
            self._pid,
            self._pstart,
            now,
            task_type,
            task_id,
            user,
            task_id=self._task_seq if self.service == "PBS" else None,
            log=list(begin or []),
            on_stop=on_stop,
        )
        ring = self.by_node.setdefault(node, deque())
        if len(ring) >= self.per_node:
            old = ring.popleft()
            self.index.pop(old.upid, None)
        ring.append(task)
        self.index[upid] = task
        for cb in self.on_start:
            cb(task)
        task.runner = asyncio.get_running_loop().create_task(
            self._run(task, finish), name=f"pvesim-{task_type}"
        )
        return task

    async def _run(self, task: Task, finish: FinishFn) -> None:
        await asyncio.sleep(self.duration(task.type))
        try:
            warnings = finish(task)
        except TaskFailure as exc:
            self._end(task, exc.message, f"TASK ERROR: {exc.message}")
        except Exception as exc:  # a simulator bug must still end the task
            log.exception("task %s crashed", task.upid)
            self._end(task, f"internal error: {exc}", f"TASK ERROR: internal error: {exc}")
        else:
            if warnings:
                self._end(task, f"WARNINGS: {warnings}", f"TASK WARNINGS: {warnings}")
            else:
                self._end(task, "OK", "TASK OK")

    def _end(self, task: Task, status: str, line: str) -> None:
        task.log.append(line)
        task.endtime = int(time.time())
        task.exitstatus = status
        for cb in self.on_end:
            cb(task)

    def stop(self, task: Task) -> None:
        """Interrupt a running task (``DELETE /nodes/{node}/tasks/{upid}``)."""
        if not task.running:
            return
        if task.runner is not None:
            task.runner.cancel()
        task.log.append("received interrupt")
        if task.on_stop is not None:
            task.on_stop()
        self._end(task, "interrupted by signal", "TASK ERROR: interrupted by signal")

    def get(self, upid: str) -> Task | None:
        """Look a task up by UPID."""
        return self.index.get(upid)

    def all_tasks(self) -> list[Task]:
        """All remembered tasks, newest first."""
        tasks = [t for ring in self.by_node.values() for t in ring]
        tasks.sort(key=lambda t: (t.starttime, t.pid), reverse=True)
        return tasks

    async def close(self) -> None:
        """Cancel every running task runner."""
        runners = [t.runner for t in self.index.values() if t.runner and not t.runner.done()]
        for r in runners:
            r.cancel()
        for r in runners:
            with contextlib.suppress(asyncio.CancelledError):
                await r


@dataclass(slots=True)
class LogEntry:
    """One ``/cluster/log`` entry."""

    uid: int
    time: int
    node: str
    pid: int
    tag: str
    pri: int
    user: str
    msg: str

    def as_dict(self) -> dict[str, Any]:
        """Wire form, like the real cluster log (``id`` is ``<uid>:<uid>``)."""
        return asdict(self) | {"id": f"{self.uid:08X}:{self.uid:08X}"}


class ClusterLog:
    """Bounded cluster log, newest last."""

    def __init__(self, maxlen: int = 5000) -> None:
        self.entries: deque[LogEntry] = deque(maxlen=maxlen)
        self._uid = int(time.time()) & 0xFFFFFF

    def add(self, node: str, pid: int, tag: str, pri: int, user: str, msg: str) -> LogEntry:
        """Append an entry and return it."""
        self._uid += 1
        e = LogEntry(self._uid, int(time.time()), node, pid, tag, pri, user, msg)
        self.entries.append(e)
        return e

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` newest entries, newest first (as ``/cluster/log`` returns them)."""
        out: list[dict[str, Any]] = []
        for e in reversed(self.entries):
            if len(out) >= limit:
                break
            out.append(e.as_dict())
        return out
