"""The nightly regression run: one pytest run across the lab's boards, and its summary."""
