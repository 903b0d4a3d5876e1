"""pkgrepo: keep the default Python package repositories of Databricks workspaces in Git.

The pipeline is visible in the folders: ``config`` loads the desired state, ``core`` (the pure
core: model, diff, plan, policy, redact, reports; no I/O) compares it with the live state,
``engine`` runs the plan over one workspace or a fleet, ``edges`` does the I/O (``adapter``
is the only user of databricks-sdk), ``render`` and ``terminal`` show the results, and
``commands`` with ``cli`` are the command line. ARCHITECTURE.md draws it.
"""

__version__ = "0.1.0"
