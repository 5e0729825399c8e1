import pytest
from proxbus_ingest_pve_ws.settings import Settings


def test_clusters_come_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PVE_WS_CLUSTERS", "lab, prod ,")
    assert Settings(_env_file=None).clusters == ["lab", "prod"]  # type: ignore[call-arg]


def test_clusters_default_to_the_site(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PVE_WS_CLUSTERS", raising=False)
    monkeypatch.setenv("PROXBUS_SITE", "home")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.clusters == ["home"]
    assert s.health_port == 8090


def test_lease_defaults_to_three_polls_at_least_ten_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PVE_WS_POLL_SECONDS", "7")
    assert Settings(_env_file=None).lease_seconds == 21  # type: ignore[call-arg]
    monkeypatch.setenv("PVE_WS_POLL_SECONDS", "1")
    assert Settings(_env_file=None).lease_seconds == 10  # type: ignore[call-arg]


def test_the_dispatchers_gotify_url_never_starts_the_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOTIFY_URL", "https://outgoing.example")
    assert Settings(_env_file=None).gotify_listen_url is None  # type: ignore[call-arg]
    monkeypatch.setenv("GOTIFY_LISTEN_URL", "https://listen.example")
    assert Settings(_env_file=None).gotify_listen_url == "https://listen.example"  # type: ignore[call-arg]
