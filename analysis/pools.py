"""Assign vesicles to pools by distance rules written in a small YAML file.

Rule file format::

    # A vesicle joins the first pool, top to bottom, whose conditions all hold.
    # Each condition is `structure: limit`, meaning distance_nm < limit (strict).
    pools:
      - name: Docked-V
        max_distance_nm: {psd: 100, membrane: 2}
      - name: MP-V
        max_distance_nm: {psd: 100, membrane: 50}
      - name: RA-V
        max_distance_nm: {ribbon: 80}
    default_pool: unassigned

Structure names refer to the distance columns ``distance_to_<name>_nm``.
A missing (NaN) distance never satisfies a condition. The defaults follow
SynapseNet: docked vesicles are < 2 nm from the active-zone membrane;
ribbon synapses use the three pools above with Docked over MP over RA.
A rule file given by the user replaces the defaults entirely.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import yaml

from ._checks import yaml_problem

ACTIVE_ZONE_RULES = """
pools:
  - name: docked
    max_distance_nm: {active_zone: 2}
default_pool: non-docked
"""

RIBBON_RULES = """
pools:
  - name: Docked-V
    max_distance_nm: {psd: 100, membrane: 2}
  - name: MP-V
    max_distance_nm: {psd: 100, membrane: 50}
  - name: RA-V
    max_distance_nm: {ribbon: 80}
default_pool: unassigned
"""


@dataclass(frozen=True)
class Pool:
    """One pool: its name and ``structure -> distance limit (nm, strict)``."""

    name: str
    max_distance_nm: Mapping[str, float]


@dataclass(frozen=True)
class PoolRules:
    """Ordered pools (first match wins) and the name given to unmatched vesicles."""

    pools: tuple[Pool, ...]
    default_pool: str = "unassigned"

    @property
    def structures(self) -> set[str]:
        """Structure names the rules need distances for."""
        return {name for pool in self.pools for name in pool.max_distance_nm}


def parse_pool_rules(text: str, source: str = "<string>") -> PoolRules:
    """Parse rules from YAML text (format in the module docstring).

    Raises
    ------
    ValueError
        One line naming ``source`` and the offending entry (or the YAML line
        and column) if the text is malformed.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{source}: not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("pools"), list):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ValueError(f"{source}: pool rules need a mapping with a top-level `pools:` list, got {got}")
    unknown = set(data) - {"pools", "default_pool"}
    if unknown:
        raise ValueError(f"{source}: unknown keys {sorted(unknown)}; allowed: pools, default_pool")
    pools = []
    for k, entry in enumerate(data["pools"]):
        if not isinstance(entry, dict) or "name" not in entry or not isinstance(entry.get("max_distance_nm"), dict):
            raise ValueError(f"{source}: pools[{k}] needs `name` and a `max_distance_nm` mapping, got {entry!r}")
        limits = {}
        for structure, limit in entry["max_distance_nm"].items():
            if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not np.isfinite(limit):
                raise ValueError(f"{source}: pools[{k}] ({entry['name']}): limit for {structure!r} must be a number in nm, got {limit!r}")
            limits[str(structure)] = float(limit)
        pools.append(Pool(name=str(entry["name"]), max_distance_nm=limits))
    return PoolRules(pools=tuple(pools), default_pool=str(data.get("default_pool", "unassigned")))


def load_pool_rules(path: Path | str | None, structure_names: Iterable[str] = ()) -> PoolRules:
    """Rules from ``path``, or the SynapseNet defaults for the structures at hand.

    Parameters
    ----------
    path : path, optional
        YAML rule file; replaces the defaults.
    structure_names : iterable of str
        Structures segmented. Without ``path``: ribbon rules if ``ribbon`` is
        among them, else active-zone rules if ``active_zone`` is, else no pools.

    Raises
    ------
    ValueError
        One line naming ``path`` if it cannot be read or is malformed.
    """
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: cannot read pool rules: {getattr(err, 'strerror', None) or err}") from None
        return parse_pool_rules(text, source=str(path))
    names = set(structure_names)
    if "ribbon" in names:
        return parse_pool_rules(RIBBON_RULES, "ribbon defaults")
    if "active_zone" in names:
        return parse_pool_rules(ACTIVE_ZONE_RULES, "active-zone defaults")
    return PoolRules(pools=(), default_pool="unassigned")


def assign_pools(distances: pd.DataFrame, rules: PoolRules) -> pd.Series:
    """Pool name of every vesicle.

    Parameters
    ----------
    distances : pandas.DataFrame
        One row per vesicle with a column ``distance_to_<structure>_nm`` for
        every structure the rules name.
    rules : PoolRules

    Returns
    -------
    pandas.Series of str, named ``pool``, same index as ``distances``.

    Raises
    ------
    KeyError
        If a structure named by the rules has no distance column.
    """
    missing = sorted(s for s in rules.structures if f"distance_to_{s}_nm" not in distances.columns)
    if missing:
        raise KeyError(
            f"pool rules need distances to {missing}, but the table has only "
            f"{[c for c in distances.columns if c.startswith('distance_to_')]}"
        )
    pool = np.full(len(distances), rules.default_pool, dtype=object)
    assigned = np.zeros(len(distances), dtype=bool)
    for rule in rules.pools:
        hit = ~assigned
        for structure, limit in rule.max_distance_nm.items():
            values = distances[f"distance_to_{structure}_nm"].to_numpy(dtype=np.float64)
            hit &= np.nan_to_num(values, nan=np.inf) < limit
        pool[hit] = rule.name
        assigned |= hit
    return pd.Series(pool, index=distances.index, name="pool")
