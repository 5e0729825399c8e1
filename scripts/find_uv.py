"""Print the path of uv: on PATH, else where `pip install` put it (scripts, or ~/.local/bin)."""

import os
import shutil
import site
import sysconfig

candidates = [
    shutil.which("uv"),
    os.path.join(sysconfig.get_path("scripts"), "uv"),
    os.path.join(site.getuserbase(), "bin", "uv"),
]
print(next((c for c in candidates if c and os.path.exists(c)), "uv"))
