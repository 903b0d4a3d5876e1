"""``python -m reconciler`` is the same as the ``pkgrepo`` command."""

from reconciler.cli import main

raise SystemExit(main())
