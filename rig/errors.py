"""The one base error of rig.

Each layer (inventory, power, console, lock, double, plugin) raises its own subclass, with a
message written for a lab engineer: what broke, where, and what to do about it. The CLI and the
pytest plugin print these messages as they are, never as a traceback.
"""


class RigError(Exception):
    """A problem the user can act on; its message is complete on its own."""
