"""``python -m ordercore``: hands over to the command-line adapter."""

from ordercore_adapters.cli import main

raise SystemExit(main())
