"""The errors of the board double: one base type, its messages written for a lab engineer."""

from rig.errors import RigError


class DoubleError(RigError):
    """The board double cannot be built or started as asked."""


class FaultError(DoubleError):
    """A fault description the double does not understand."""
