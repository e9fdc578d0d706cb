"""Connectors: the only code that talks to sockets, filesystems and processes of a host."""
