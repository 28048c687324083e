"""Model card (README.md) and cover image of a package."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _to_uint8(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99])
    return (np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def write_cover(path: Path, image: np.ndarray, channels: np.ndarray) -> None:
    """Write a PNG: the input beside an RGB overlay of the first output channels.

    Parameters
    ----------
    image : ndarray, shape ([Z,] Y, X)
    channels : ndarray, shape (C, [Z,] Y, X), values in [0, 1]
        The central z-slice is shown for 3D data.
    """
    from PIL import Image

    if image.ndim == 3:
        mid = image.shape[0] // 2
        image, channels = image[mid], channels[:, mid]
    grey = _to_uint8(image)
    rgb = np.stack([grey] * 3, -1).astype(np.float32)
    colours = np.array([[255, 60, 60], [60, 255, 60], [60, 120, 255]], np.float32)
    overlay = rgb.copy()
    for c in range(min(3, channels.shape[0])):
        a = np.clip(channels[c], 0, 1)[..., None] * 0.6
        overlay = overlay * (1 - a) + colours[c] * a
    both = np.concatenate([rgb, overlay], axis=1).astype(np.uint8)
    # covers must have an aspect ratio between 1:1 and 2:1
    Image.fromarray(both).save(path)


def cite_lines(cites) -> list:
    """The model card's "Cite" section: one bullet per entry, with its DOI (and URL) when given."""
    lines = ["## Cite", ""]
    for c in cites:
        ref = " ".join(x for x in (f"doi:{c['doi']}" if c.get("doi") else "", c.get("url", "")) if x)
        lines.append(f"- {c['text']}" + (f" {ref}" if ref else ""))
    return lines


def write_model_card(path: Path, info, config, n_channels: int, cites=None) -> None:
    """Write the package's README.md from its metadata and card sections.

    `cites` are the RDF's citations (`metadata.package_cites`); without them, ``info.cite``.
    """
    vs = " x ".join(f"{v:g}" for v in config.voxel_size_nm)
    axes = "(z, y, x)" if len(config.voxel_size_nm) == 3 else "(y, x)"
    lines = [
        f"# {info.name}",
        "",
        info.description,
        "",
        "## Inputs and outputs",
        "",
        f"- Input: one channel of EM, axes b, c, {', '.join('zyx'[-len(config.voxel_size_nm):])}; "
        f"trained at {vs} nm {axes}. `synapse-bmz run` rescales other voxel sizes.",
        f"- Output: {n_channels} channels of probabilities: " + ", ".join(config.channels) + ".",
        f"- Halo (voxels, per spatial axis): {config.halo}.",
    ]
    if config.postprocessing:
        lines.append(
            f"- Postprocessing recipe: `{config.postprocessing.recipe}` with "
            f"{config.postprocessing.params or 'its defaults'}."
        )
    lines += ["", f"## Licence", "", f"{info.license}."]
    for title, body in info.card_sections.items():
        lines += ["", f"## {title}", "", body.strip()]
    if not any("validation" in title.lower() for title in info.card_sections):
        # bioimage.io asks every model card for a "Validation" section
        acc = getattr(config, "accuracy", None) or {}
        figures = ", ".join(f"{k} = {v}" for k, v in acc.items() if k != "split")
        lines += ["", "## Validation", "",
                  "`bioimageio test rdf.yaml` reproduces `test_output.npy` from `test_input.npy` within the "
                  "RDF's `reproducibility_tolerance`, for every weight format."
                  + (f" Held-out figures ({acc.get('split', 'split not recorded')}): {figures}." if figures else
                     " No held-out accuracy is recorded for these weights.")]
    cites = info.cite if cites is None else cites
    if cites:
        lines += [""] + cite_lines(cites)
    lines += [
        "",
        "## Use",
        "",
        "```",
        f"synapse-bmz run {info.name} INPUT -o OUTPUT_DIR",
        "bioimageio test rdf.yaml",
        "```",
        "",
    ]
    path.write_text("\n".join(lines))


def with_cite_section(card: str, cites) -> str:
    """`card` (markdown) with its "## Cite" section replaced by `cites`, or one added
    (before "## Use" when there is one, else at the end)."""
    import re

    section = "\n".join(cite_lines(cites)) + "\n"
    if re.search(r"^## Cite\s*$", card, flags=re.M):
        return re.sub(r"^## Cite\s*$.*?(?=^## |\Z)", lambda _: section + "\n", card, count=1,
                      flags=re.M | re.S).rstrip("\n") + "\n"
    m = re.search(r"^## Use\s*$", card, flags=re.M)
    if m:
        return card[:m.start()] + section + "\n" + card[m.start():]
    return card.rstrip("\n") + "\n\n" + section
