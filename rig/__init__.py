"""rig: hardware-in-the-loop tests for Afero-style boards."""
