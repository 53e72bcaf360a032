"""The core's own hook implementations, registered like any plugin (essential: never blocked)."""
