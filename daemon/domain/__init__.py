"""Pure domain logic: no I/O, no clock reads, no third-party adapters."""
