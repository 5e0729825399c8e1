"""proxbus-devtools: the ``proxbus`` command, the local supervisor (``proxbus up``), the pytest plugin.

Nothing here is imported by a service; services are reached through their console scripts and
the ``proxbus.commands`` entry points.
"""
