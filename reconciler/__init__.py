"""pkgrepo: keep the default Python package repositories of Databricks workspaces in Git.

The pipeline is visible in the module names: ``config`` loads the desired state, ``plan``
compares it with the live state the ``adapter`` reads, ``apply`` carries out the plan, and
``fleet`` runs that over many workspaces. ``model``, ``diff``, ``plan``, ``policy`` and
``redact`` are the pure core: they do no I/O.
"""

__version__ = "0.1.0"
