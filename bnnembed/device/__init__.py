"""Run on devices: boards, QEMU machines, the toolchain, simulation."""
