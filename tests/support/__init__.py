"""The one test harness every folder of tests shares (registered as a pytest plugin by the
top ``tests/conftest.py``):

- ``emulated_port``: a ``WorkspacePort`` over the emulator's own backends, in this process
  (as moto runs in-process): the engine's unit tests run against the one model of the
  service the HTTP emulator serves, without sockets.
- ``clock``: ``FakeClock``, time that moves only when code sleeps.
- ``leaks``: the scanner that looks for planted secret values in every form they could
  travel in.
"""
