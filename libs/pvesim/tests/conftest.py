from proxbus_pvesim.testing import pvesim, pvesim_thread  # noqa: F401 - fixtures
