"""Upload metadata every package's RDF carries: id, version, git_repo, authors
with affiliation, maintainers, citations (with DOIs), the declared PyTorch version.

One place for what bioimage.io asks of an uploaded model, so a rebuilt package
(`build.build_package`, `features.build_feature_package`) and a refreshed one
(`refresh.refresh_package`, existing weights kept) write the same fields.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Union

#: The project's repository, as ``[project.urls] Repository`` in pyproject.toml (the test checks
#: they agree). PLACEHOLDER: the public repository is not published yet; change both together.
PROJECT_URL = "https://github.com/synapse-bmz/synapse-bmz"

#: Affiliation of the collective author. PLACEHOLDER until named developers and their
#: institution replace "synapse-bmz developers" before an upload.
AFFILIATION = "synapse-bmz project"
DEFAULT_AUTHORS = [{"name": "synapse-bmz developers", "affiliation": AFFILIATION}]

#: bioimage.io maintainers, ``{"name": ..., "github_user": ...}``. Empty on purpose: the spec requires a
#: ``github_user`` per maintainer and looks it up on api.github.com whenever it validates with io checks,
#: so an offline reader (ilastik, `bioimageio test` in our containers) rejects the RDF
#: (``httpx.ConnectError``) and a made-up account is rejected online. Fill in a real account before
#: an upload and accept that offline validation then needs ``BIOIMAGEIO_PERFORM_IO_CHECKS=false``.
MAINTAINERS: List[Dict[str, str]] = []

#: ``pytorch_version`` declared for the torchscript and state-dict weights: the oldest PyTorch that
#: loads every shipped package and reproduces its test output (`tests/test_old_torch.py`,
#: ``make test-old-torch``), and the oldest engine deepImageJ offers (1.13.1 .. 2.0.0).
OLDEST_TESTED_TORCH = "1.13.1"

#: The project's own entry; replaces the bare website entry (https://bioimage.io) older builds wrote.
PROJECT_CITE = {"text": "synapse-bmz: synapse segmentation and analysis for electron microscopy "
                        "with BioImage Model Zoo packages", "url": PROJECT_URL}
_WEBSITE_URLS = {"https://bioimage.io", "https://bioimage.io/"}

UNET_2015 = {"text": "Ronneberger O., Fischer P., Brox T. U-Net: Convolutional networks for biomedical image "
                     "segmentation. MICCAI 2015, LNCS 9351, 234-241", "doi": "10.1007/978-3-319-24574-4_28"}
UNET_3D_2016 = {"text": "Cicek O., Abdulkadir A., Lienkamp S. S., Brox T., Ronneberger O. 3D U-Net: learning dense "
                        "volumetric segmentation from sparse annotation. MICCAI 2016, LNCS 9901, 424-432",
                "doi": "10.1007/978-3-319-46723-8_49"}
VGG_2014 = {"text": "Simonyan K., Zisserman A. Very deep convolutional networks for large-scale image "
                    "recognition. arXiv:1409.1556 (2014)", "doi": "10.48550/arXiv.1409.1556"}
#: architecture callable -> what its design cites (3D U-Nets add Cicek et al.)
ARCHITECTURE_CITES = {"UNet": [UNET_2015], "PartnerUNet": [UNET_2015], "VGG3D": [VGG_2014]}
#: URL-only references whose DOI is known (arXiv DOIs are registered by DataCite)
KNOWN_DOIS = {"https://arxiv.org/abs/2112.05754": "10.48550/arXiv.2112.05754"}


def package_version() -> str:
    """The package's ``version``: the synapse-bmz release that wrote it (SemVer)."""
    from .. import __version__

    return str(__version__)


def package_id(name: str) -> str:
    """``id`` of a package: ``synapse-bmz-<name>`` with ``_`` as ``-`` (bioimage.io ids are
    lowercase letters, digits and ``-_/.``). bioimage.io may assign its own on upload."""
    return "synapse-bmz-" + name.lower().replace("_", "-")


def normalise_authors(authors: Optional[Iterable[Union[str, Dict[str, str]]]]) -> List[Dict[str, str]]:
    """Author entries with an affiliation (names given as strings get `AFFILIATION`)."""
    out = []
    for a in authors or []:
        entry = {"name": a} if isinstance(a, str) else {k: str(v) for k, v in dict(a).items() if v}
        entry.setdefault("affiliation", AFFILIATION)
        out.append(entry)
    return out or [dict(a) for a in DEFAULT_AUTHORS]


def package_cites(cites: Sequence[Dict[str, str]], arch_callable: Optional[str], ndim: int) -> List[Dict[str, str]]:
    """The RDF's ``cite``: the given entries (data, method), then the architecture's papers, then the project.

    Bare website entries are dropped, known DOIs are added to URL-only entries, and
    duplicates (same DOI, else same text) are kept once.
    """
    arch = list(ARCHITECTURE_CITES.get(arch_callable or "", []))
    if arch_callable in ("UNet", "PartnerUNet") and ndim == 3:
        arch.append(UNET_3D_2016)
    out, seen = [], set()
    for c in list(cites) + arch + [PROJECT_CITE]:
        c = {k: str(v) for k, v in dict(c).items() if v}
        if c.get("url") in _WEBSITE_URLS and not c.get("doi"):
            continue
        if "doi" not in c and c.get("url") in KNOWN_DOIS:
            c["doi"] = KNOWN_DOIS[c["url"]]
        key = c.get("doi") or c.get("text")
        if key in seen:
            continue
        seen.add(key)
        out.append(c)
    return out


def upload_fields(name: str, authors, cites, arch_callable: Optional[str], ndim: int) -> Dict[str, object]:
    """``id``, ``version``, ``git_repo``, ``authors``, ``maintainers`` (when known) and ``cite``."""
    fields: Dict[str, object] = {
        "id": package_id(name), "version": package_version(), "git_repo": PROJECT_URL,
        "authors": normalise_authors(authors)}
    if MAINTAINERS:
        fields["maintainers"] = [dict(m) for m in MAINTAINERS]
    fields["cite"] = package_cites(cites, arch_callable, ndim)
    return fields
