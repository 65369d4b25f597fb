"""`python -m rig` is the `rig` command (the plugin starts the double this way)."""

import gc

# Start-up allocates objects that all stay (modules, classes, pydantic schemas); collecting them
# cost ~20 % of a double's start. The command turns it back on once its line is read.
gc.disable()

from rig.cli.main import main  # noqa: E402

raise SystemExit(main())
