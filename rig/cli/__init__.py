"""The `rig` command: one module per verb family, `main` builds the parser and dispatches."""
