"""The engine: runs the plan over workspaces. ``fleet`` selects, shards and runs workspaces on
one thread pool, ``workspace`` observes, plans and applies one of them, ``apply`` makes the
ordered idempotent writes, ``lock`` holds the leased per-workspace lock, with ``retry``,
``clock`` and ``cancel``. It reaches the service only through ``port.WorkspacePort``, the
protocol the edges implement."""
