"""Render the model: C sources, CNF, PlatformIO projects."""
