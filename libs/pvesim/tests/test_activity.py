from collections import Counter

from proxbus_pvesim.activity import DemoActivity
from proxbus_pvesim.simulator import Simulator


async def test_demo_activity_produces_tasks_and_both_outcomes(pvesim: Simulator) -> None:
    activity = DemoActivity(pvesim, interval=0, seed=7)
    async with activity._session() as http:
        steps = [await activity.step(http) for _ in range(60)]
    done = Counter(step.split(" ")[0] for step in steps)
    await pvesim.pve_tasks.close()
    tasks = pvesim.pve_tasks.all_tasks()
    assert done["start"]
    assert done["backup"]
    assert len(tasks) >= done["start"] + done["backup"] + done["shutdown"]
    statuses = {t.exitstatus for t in tasks if t.type == "vzdump"}
    assert "OK" in statuses
    assert any(s and s != "OK" for s in statuses)
