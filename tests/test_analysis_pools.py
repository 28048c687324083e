"""Pool assignment with the SynapseNet defaults and with user rules."""

import numpy as np
import pandas as pd
import pytest

from analysis.pools import assign_pools, load_pool_rules, parse_pool_rules


def test_active_zone_default_docked_below_2_nm():
    rules = load_pool_rules(None, ["active_zone"])
    table = pd.DataFrame({"distance_to_active_zone_nm": [0.0, 1.99, 2.0, 50.0, np.nan]})
    assert assign_pools(table, rules).tolist() == ["docked", "docked", "non-docked", "non-docked", "non-docked"]


def test_ribbon_defaults_and_precedence():
    rules = load_pool_rules(None, ["ribbon", "psd", "membrane"])
    table = pd.DataFrame({
        "distance_to_ribbon_nm": [10, 10, 10, 79, 81, 10],
        "distance_to_psd_nm": [50, 50, 150, 150, 150, 99.9],
        "distance_to_membrane_nm": [1, 40, 1, 1, 1, 49.9],
    })
    # docked beats MP beats RA; docked/MP need the PSD too
    assert assign_pools(table, rules).tolist() == ["Docked-V", "MP-V", "RA-V", "RA-V", "unassigned", "MP-V"]


def test_user_rules_replace_defaults(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("pools:\n  - name: near\n    max_distance_nm: {active_zone: 10}\ndefault_pool: far\n")
    rules = load_pool_rules(path, ["active_zone"])
    table = pd.DataFrame({"distance_to_active_zone_nm": [1.0, 9.0, 11.0]})
    assert assign_pools(table, rules).tolist() == ["near", "near", "far"]


def test_bad_rules_and_missing_structure_are_named():
    with pytest.raises(ValueError, match="pools"):
        parse_pool_rules("foo: 1")
    with pytest.raises(ValueError, match="membrane"):
        parse_pool_rules("pools:\n  - name: a\n    max_distance_nm: {membrane: near}\n")
    rules = parse_pool_rules("pools:\n  - name: a\n    max_distance_nm: {psd: 5}\n")
    with pytest.raises(KeyError, match="psd"):
        assign_pools(pd.DataFrame({"distance_to_ribbon_nm": [1.0]}), rules)
