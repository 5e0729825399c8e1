import os
import signal
import subprocess
import sys
import textwrap
import time


def run_child(body: str) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        """
        import asyncio, sys
        from proxbus_events import ServiceSettings, run_service

        async def main(stop):
            print("ready", flush=True)
            await stop.wait()
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_sigterm_stops_the_service_cleanly() -> None:
    proc = run_child(
        """
        sys.exit(run_service(main, name="unit", settings=ServiceSettings()))
        """
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_a_service_that_ignores_stop_is_cut_off_after_the_grace_period() -> None:
    proc = run_child(
        """
        from proxbus_events.runner import serve_until_stopped
        async def stubborn(stop):
            print("ready", flush=True)
            await stop.wait()
            await asyncio.sleep(60)
        sys.exit(asyncio.run(serve_until_stopped(stubborn, name="unit", grace=0.5)))
        """
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=10) == 1
    assert time.monotonic() - started < 5
