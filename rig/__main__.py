"""`python -m rig` is the `rig` command (the plugin starts the double this way)."""

from rig.cli.main import main

raise SystemExit(main())
