from datetime import timedelta

from proxbus_events import Matcher, Silence
from proxbus_runtime import SilenceStore


async def test_silences_are_stored_listed_and_expired_in_kv(js) -> None:
    store = await SilenceStore.open(js)
    silence = Silence.for_duration(
        [Matcher.parse("node=pve1")], timedelta(hours=1), created_by="alice", comment="maint"
    )
    await store.add(silence)
    listed = await store.list()
    assert [s.id for s in listed] == [silence.id]
    assert listed[0].created_by == "alice"
    expired = await store.expire(silence.id)
    assert expired is not None
    assert not expired.is_active()
    assert await store.list() == []
    assert len(await store.list(include_expired=True)) == 1
    assert await store.expire("nope") is None
