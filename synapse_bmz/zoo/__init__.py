"""Finding, loading and describing bioimage.io model packages."""
