"""Drivers for the real instruments of a bench: power supply, console, sniffer ports.

Each driver talks to real interfaces (VISA, serial ports, pseudo-terminals) and raises its own
`RigError` subclass with a message for a lab engineer. Nothing here imports pytest or a reporter.
"""
