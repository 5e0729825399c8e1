import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
from proxbus_devtools.testing import NatsServer
from proxbus_events import Event
from proxbus_runtime import EventPublisher

README = Path(__file__).parents[1] / "README.md"


def subscriber_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- subscriber-example -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "the README lost its subscriber example"
    return match.group(1)


def test_readme_subscriber_example_is_short() -> None:
    lines = [line for line in subscriber_example().splitlines() if line.strip()]
    assert len(lines) <= 10


async def test_readme_subscriber_example_prints_only_error_events(
    js, nats_server: NatsServer
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", subscriber_example()],
        env={**os.environ, "NATS_URL": nats_server.url},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        async with EventPublisher(js) as pub:
            # Keep publishing until the example is subscribed and prints the error event.
            with anyio.fail_after(20):
                line = ""
                while not line:
                    pub.submit(Event(source="syslog", kind="task.ok", title="fine", node="pve1"))
                    pub.submit(
                        Event(source="syslog", kind="task.failed", title="broke",
                              node="pve1", severity="error")
                    )  # fmt: skip
                    await pub.flush(5)
                    line = await anyio.to_thread.run_sync(_readline_with_timeout, proc, 0.5)
        assert line.strip() == "pve1 task.failed broke"
    finally:
        proc.kill()
        proc.wait()


def _readline_with_timeout(proc: subprocess.Popen[str], timeout: float) -> str:
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""
