"""Partner training targets from the simulated neuropil: the extraction recovers the exact
partner table from them (the ceiling a perfect network reaches)."""

import numpy as np
import pytest

from analysis.partner_evaluation import evaluate_partners
from postprocessing.partners import polarity_partners, synful_partners
from synapse_bmz.simulate import simulate_sstem_neuropil
from synapse_bmz.simulate.partner_targets import ground_truth_partners, partner_targets


@pytest.fixture(scope="module")
def sims():
    return [simulate_sstem_neuropil((16, 256, 256), seed=s, n_synapses=12) for s in (0, 1)]


def test_vectors_point_from_every_post_voxel_to_a_pre_site(sims):
    sim = sims[0]
    t = partner_targets(sim.labels["neurons"], sim.labels["membrane"], sim.partners, sim.voxel_size_nm)
    vox = np.asarray(sim.voxel_size_nm)
    where = np.argwhere(t.post > 0)
    assert len(where) > 500 and t.vectors[:, t.post == 0].max() == 0
    targets = where * vox + t.vectors[:, t.post > 0].T
    pre_sites = sim.partners[["pre_z_nm", "pre_y_nm", "pre_x_nm"]].to_numpy(float)
    nearest = np.min(np.linalg.norm(targets[:, None] - pre_sites[None], axis=2), axis=1)
    assert nearest.max() < 1e-3
    # post masks lie in the post-synaptic neurons, the pre region in the pre-synaptic ones
    assert set(np.unique(sim.labels["neurons"][t.post > 0])) <= set(sim.partners.post_label)
    assert set(np.unique(sim.labels["neurons"][t.pre > 0])) <= set(sim.partners.pre_label)
    assert np.array_equal(t.union > 0, (t.pre > 0) | (t.post > 0))
    assert t.synful().shape == (4,) + sim.raw.shape and t.polarity().shape == (3,) + sim.raw.shape


def test_extraction_of_the_targets_recovers_the_partner_table(sims):
    for sim in sims:
        t = partner_targets(sim.labels["neurons"], sim.labels["membrane"], sim.partners, sim.voxel_size_nm)
        gt = ground_truth_partners(sim)
        neurons = sim.labels["neurons"]
        syn = synful_partners(t.post, t.vectors, sim.voxel_size_nm, neurons=neurons)
        s = evaluate_partners(syn, gt, max_distance_nm=100.0)
        assert s["use_neuron_ids"] and s["f_score"] == 1.0, s
        # in-plane dilation: a z ball would join synapses two sections apart
        pol = polarity_partners(t.pre, t.post, t.union, sim.voxel_size_nm, neurons=neurons,
                                dilation_nm=[0.0, 40.0, 40.0])
        s = evaluate_partners(pol, gt, max_distance_nm=100.0)
        assert s["f_score"] == 1.0, s
