"""One module per ``pkgrepo`` subcommand, each exposing a ``command`` (a click command)."""
