"""The edges: every place pkgrepo touches the world. ``adapter`` is the only module that
imports ``databricks-sdk``; ``ledger_store`` keeps the signed ledger in the workspace,
``planfile`` reads and writes signed saved plans, ``private_file`` writes 0600 files,
``fleet_record`` records fleet runs, ``probe`` probes package indexes over HTTP,
``throttle`` holds ``--rate-limit``'s bucket per host (the adapter takes a token before
every call) and ``export`` builds a desired-state file from what workspaces hold."""
