"""The plugin's npe2 manifest: valid, importable, discovered through the ``napari.manifest`` entry point.

No display needed (the viewer tests are in ``test_napari_plugin.py``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("npe2", reason="the napari extra is not installed (pip install 'synapse-bmz[napari]')")

PLUGIN = "synapse-bmz"


def test_manifest_is_valid_and_discovered():
    """`npe2 validate synapse-bmz --imports` passes and napari finds the plugin by its entry point."""
    from npe2 import PluginManager, PluginManifest

    manifest = PluginManifest.from_distribution(PLUGIN)
    manifest.validate_imports()
    run = subprocess.run([sys.executable, "-m", "npe2", "validate", PLUGIN, "--imports"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    pm = PluginManager.instance()
    pm.discover()
    assert pm.get_manifest(PLUGIN).name == PLUGIN
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"Segmentation", "Postprocessing", "Size filter", "Distance measurement", "Morphology",
                       "Pool assignment"}
