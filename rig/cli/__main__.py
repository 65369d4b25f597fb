"""`python -m rig.cli`: the rig command."""

from rig.cli.main import main

raise SystemExit(main())
