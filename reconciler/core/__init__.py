"""The pure core: what pkgrepo knows, with no I/O. The vocabulary (``model``), comparing values
by meaning (``diff``), desired + live + ledger into a plan and its safety verdict (``plan``),
the built-in checks (``policy``), what may be shown of a secret (``redact``), derived keys,
certificates, the ledger document, verify and discovery judgements, the results of a run and
the reports drawn from them, and every exception type pkgrepo raises on purpose (``errors``).
Nothing here imports the engine, the edges, the terminal or an I/O library (checked by
``make lint``)."""
