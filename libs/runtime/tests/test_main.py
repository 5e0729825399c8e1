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
        from proxbus_runtime import ServiceSettings, main

        async def serve(settings, stop):
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
        sys.exit(main("unit", ServiceSettings, serve, argv=[]))
        """
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_a_service_that_ignores_stop_is_cut_off_after_the_grace_period() -> None:
    proc = run_child(
        """
        from proxbus_runtime.main import serve_until_stopped
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


def test_stop_requested_while_draining_is_a_clean_exit() -> None:
    # A service still waiting for NATS raises StopRequested once it is told to stop.
    proc = run_child(
        """
        from proxbus_runtime import StopRequested

        async def waiting(settings, stop):
            print("ready", flush=True)
            await stop.wait()
            await asyncio.sleep(0.1)
            raise StopRequested("unit: stopped before NATS was ready")

        sys.exit(main("unit", ServiceSettings, waiting, argv=[]))
        """
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()


def run_main(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        """
        import sys
        from proxbus_runtime import ServiceSettings, main

        async def serve(settings, stop):
            await stop.wait()

        sys.exit(main("unit", ServiceSettings, serve, argv=sys.argv[1:]))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_invalid_settings_exit_2_with_one_line_and_no_traceback() -> None:
    result = run_main({"HEALTH_PORT": "99999", "NATS_PASSWORD": "s3cret"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("proxbus-unit: invalid settings: HEALTH_PORT:")
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr
    bad_level = run_main({"LOG_LEVEL": "loud"})
    assert bad_level.returncode == 2
    assert "LOG_LEVEL: unknown log level" in bad_level.stderr


def test_test_connection_prints_one_line_per_check(nats_server) -> None:
    result = run_main({"NATS_URL": nats_server.url}, "--test-connection")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["nats", "jetstream"]
    assert all(": ok" in line for line in lines), lines


def test_test_connection_fails_clearly_and_in_time_without_nats() -> None:
    from proxbus_devtools.testing import free_port

    started = time.monotonic()
    result = run_main({"NATS_URL": f"nats://127.0.0.1:{free_port()}"}, "--test-connection")
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith("nats: FAIL ")
    assert result.stdout.splitlines()[1] == "jetstream: FAIL no NATS connection"


def test_test_connection_says_jetstream_is_not_enabled(make_nats_server) -> None:
    server = make_nats_server(jetstream=False)
    result = run_main({"NATS_URL": server.url}, "--test-connection")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"nats: ok ({server.url}, server 2."), lines
    assert lines[1] == (
        f"jetstream: FAIL JetStream is not enabled on {server.url} (start it with `nats-server -js`)"
    )
