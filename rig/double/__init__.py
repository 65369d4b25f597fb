"""The board double: software stand-ins for lab boards behind the real interfaces.

Each emulated board is an SCPI power supply on a local TCP port (reached with pyvisa like a lab
supply) whose output powers an emulated MCU console on a pseudo-terminal (reached with pyserial
like a USB-UART). `rig.double.runner.serve` runs them; `rig double` is its command line.
"""
