"""Timer units: rendering, reading back, value checks, the sandbox, the installer."""
