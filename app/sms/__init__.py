"""Pure SMS rules: no I/O, no framework. Reused by every adapter and job."""
