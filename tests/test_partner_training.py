"""Partner training pieces: vector-aware augmentation, balanced and masked losses, the two
PartnerUNet variants, the train.yaml checks, and (slow) a tiny train-and-package run."""

from pathlib import Path

import numpy as np
import pytest
import torch

from synapse_bmz.errors import InputError
from synapse_bmz.models.partner_unet import PartnerUNet
from synapse_bmz.training.partners import (
    augment_partner_patch, balanced_mask_loss, is_partner_config, load_partner_config, masked_vector_loss,
)

REPO = Path(__file__).resolve().parents[1]
VOX = np.array([45.0, 4.6, 4.6])


def test_augmentation_turns_vectors_with_the_image():
    """Every post-synaptic voxel points at one pre-site before augmentation; after flips and the
    in-plane transpose they must still agree on one (moved) pre-site."""
    shape = (6, 16, 16)
    post = np.zeros(shape, bool)
    post[2:4, 3:7, 9:14] = True
    pre_nm = np.array([100.0, 30.0, 20.0])
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")) * VOX[:, None, None, None]
    vec = (pre_nm[:, None, None, None] - grid) * post
    target = np.concatenate([post[None], vec]).astype(np.float32)
    raw = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    seen = set()
    for seed in range(12):
        r, t = augment_partner_patch(raw, target, "synful", np.random.default_rng(seed))
        m = t[0] > 0
        g = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")) * VOX[:, None, None, None]
        points = (g + t[1:])[:, m].T
        assert np.allclose(points, points[0], atol=1e-3), seed
        seen.add(tuple(np.round(points[0], 3)))
    assert len(seen) > 4   # the augmentation really moved the pre-site


def test_balanced_loss_weighs_both_classes_equally_and_clips():
    target = torch.zeros(1, 1, 10, 10)
    target[..., :2, :] = 1.0                                   # 20 % positives
    pred = torch.full_like(target, 0.5)
    frac = 0.2
    w = target / (2 * frac) + (1 - target) / (2 * (1 - frac))
    assert float((w * target).sum()) == pytest.approx(float((w * (1 - target)).sum()))
    assert float(balanced_mask_loss(pred, target, (0.05, 0.95))) == pytest.approx(float(np.log(2)), rel=1e-5)
    # one positive voxel in 100: the fraction is clipped to 0.05, so its weight is 10, not 50
    one = torch.zeros(1, 1, 10, 10)
    one[0, 0, 0, 0] = 1.0
    p = torch.full_like(one, 0.5)
    expected = (1 / (2 * 0.05) + 99 / (2 * 0.95)) * np.log(2) / 100
    assert float(balanced_mask_loss(p, one, (0.05, 0.95))) == pytest.approx(expected, rel=1e-5)
    assert float(balanced_mask_loss(p, one, (0.05, 0.95), "mse")) == pytest.approx(
        (1 / (2 * 0.05) + 99 / (2 * 0.95)) * 0.25 / 100, rel=1e-5)


def _loss_weights(target, **kw):
    """The per-voxel weights of `balanced_mask_loss`: with pred = 0.5 every voxel's cross-entropy is
    log 2 and its derivative +-2, so the gradient of the loss w.r.t. a voxel's prediction is +-2 w / N
    (N values)."""
    pred = torch.full_like(target, 0.5, requires_grad=True)
    balanced_mask_loss(pred, target, (0.05, 0.95), **kw).backward()
    return (pred.grad.abs() * target.numel() / 2).detach()


def test_cross_negative_weight_makes_the_other_side_of_the_cleft_a_hard_negative():
    """Channels (pre, post, union) on 10 voxels: pre 0-1, post 2-5, union 0-5. f_pre 0.2 -> positives
    weigh 2.5, negatives 0.625; f_post 0.4 -> 1.25 and 0.8333; f_union 0.6 -> 0.8333 and 1.25."""
    t = torch.zeros(1, 3, 10)
    t[0, 0, :2] = 1.0
    t[0, 1, 2:6] = 1.0
    t[0, 2, :6] = 1.0
    pairs = ((0, 1), (1, 0))
    plain = _loss_weights(t)
    expected = torch.tensor([[2.5] * 2 + [0.625] * 8, [0.8333] * 2 + [1.25] * 4 + [0.8333] * 4,
                             [0.8333] * 6 + [1.25] * 4])[None]
    assert torch.allclose(plain, expected, atol=1e-3)
    # 'balanced' (the default) is the plain class balance, with or without the pairs
    assert torch.allclose(_loss_weights(t, cross_pairs=pairs, cross_weight="balanced"), plain)
    hard = _loss_weights(t, cross_pairs=pairs, cross_weight="positive")
    want = expected.clone()
    want[0, 0, 2:6] = 2.5     # post-synaptic voxels: negatives of pre with pre's positive weight
    want[0, 1, :2] = 1.25     # pre-synaptic voxels: negatives of post with post's positive weight
    assert torch.allclose(hard, want, atol=1e-3)
    # a number scales the positive weight; the union channel and the voxels outside both sides keep theirs
    half = _loss_weights(t, cross_pairs=pairs, cross_weight=0.5)
    assert torch.allclose(half[0, 0, 2:6], torch.full((4,), 1.25)) and torch.allclose(half[0, 1, :2], torch.full((2,), 0.625))
    assert torch.allclose(half[0, 2], plain[0, 2]) and torch.allclose(half[0, :2, 6:], plain[0, :2, 6:])


def test_cross_negative_weight_config(tmp_path):
    def with_option(name, value):
        lines = [ln for ln in (REPO / "model_packages" / name / "train.yaml").read_text().splitlines()
                 if not ln.startswith("  cross_negative_weight:")]
        i = lines.index("  mask_loss: cross_entropy")
        path = tmp_path / f"{name}.yaml"
        path.write_text("\n".join(lines[:i + 1] + [f"  cross_negative_weight: {value}"] + lines[i + 1:]))
        return path

    for value, expected in (("positive", "positive"), ("balanced", "balanced"), ("2.0", 2.0), ("0", 0.0)):
        assert load_partner_config(with_option("synaptic_polarity", value)).train.cross_negative_weight == expected
    for value in ("-1", ".nan", "sometimes"):
        with pytest.raises(InputError, match="cross_negative_weight"):
            load_partner_config(with_option("synaptic_polarity", value))
    # Synful has one mask channel: no other side of the cleft to weigh
    assert load_partner_config(with_option("synaptic_partners", "balanced")).train.cross_negative_weight == "balanced"
    with pytest.raises(InputError, match="only for target: polarity"):
        load_partner_config(with_option("synaptic_partners", "positive"))


def test_vector_loss_only_inside_the_mask():
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 0, 0] = 1.0
    target = torch.zeros(1, 3, 4, 4)
    pred = torch.full((1, 3, 4, 4), 500.0)     # wrong everywhere ...
    pred[..., 0, 0] = torch.tensor([100.0, 0.0, 0.0])
    loss = masked_vector_loss(pred, target, mask, 100.0)
    assert float(loss) == pytest.approx(1.0 / 3.0)   # ... but only the masked voxel counts: (100/100)^2 / 3


@pytest.mark.parametrize("variant", ["multi_task", "single_task"])
def test_partner_unet_variants(variant):
    torch.manual_seed(0)
    kw = dict(ndim=3, base_channels=4, depth=3, pool_factors=[[1, 2, 2], [1, 2, 2]],
              kernel_sizes=[[1, 3, 3], [1, 3, 3], [3, 3, 3]], vector_scale_nm=100.0)
    net = PartnerUNet(variant=variant, **kw).eval()
    y = net(torch.randn(1, 1, 4, 16, 16))
    assert y.shape == (1, 4, 4, 16, 16) and net.divisibility == [1, 4, 4]
    assert float(y[:, 0].min()) >= 0 and float(y[:, 0].max()) <= 1
    # the vector head is the decoder times the fixed scale
    raw = net.vector_decoder(net.encoder(torch.randn(1, 1, 4, 16, 16)) if variant == "multi_task" else
                             net.vector_encoder(torch.randn(1, 1, 4, 16, 16)))
    assert raw.shape[1] == 3 and not net.vector_scale.weight.requires_grad
    shared = sum(p.numel() for p in PartnerUNet(variant="multi_task", **kw).parameters())
    separate = sum(p.numel() for p in PartnerUNet(variant="single_task", **kw).parameters())
    assert separate > shared   # single task: a second encoder


def test_partner_train_configs(tmp_path):
    for name in ("synaptic_partners", "synaptic_polarity"):
        path = REPO / "model_packages" / name / "train.yaml"
        assert is_partner_config(path)
        cfg = load_partner_config(path)
        assert cfg.train.reject_probability == 0.95 and cfg.package.name == name
        assert not set(cfg.data.simulation.test_seeds) & set(range(cfg.data.simulation.n_train))
    assert not is_partner_config(REPO / "model_packages" / "vesicles_3d" / "train.yaml")
    bad = (REPO / "model_packages" / "synaptic_partners" / "train.yaml").read_text().replace(
        "test_seeds: [2000, 2001, 2002]", "test_seeds: [3, 2001]")
    (tmp_path / "t.yaml").write_text(bad)
    with pytest.raises(InputError, match="disjoint") as e:
        load_partner_config(tmp_path / "t.yaml")
    assert "\n" not in str(e.value)
    (tmp_path / "u.yaml").write_text(bad.replace("variant: multi_task", "variant: three_task"))
    with pytest.raises(InputError, match="variant"):
        load_partner_config(tmp_path / "u.yaml")


@pytest.mark.slow
def test_tiny_training_writes_a_package_that_passes_the_consumer_checks(tmp_path):
    from synapse_bmz.packaging.checks import core_test_all_weight_formats, onnx_problems, rdf_problems, torchscript_problems
    from synapse_bmz.training.partners import train_and_package

    text = (REPO / "model_packages" / "synaptic_partners" / "train.yaml").read_text()
    text = (text.replace("n_train: 12", "n_train: 1").replace("test_seeds: [2000, 2001, 2002]", "test_seeds: [2000]")
            .replace("shape: [16, 256, 256]", "shape: [8, 128, 128]").replace("variant: multi_task", "variant: single_task"))
    (tmp_path / "train.yaml").write_text(text)
    rdf = train_and_package(tmp_path / "train.yaml", out_dir=tmp_path / "pkg", work_dir=tmp_path / "run",
                            iterations=2, progress=False)
    assert rdf_problems(rdf) == [] and torchscript_problems(rdf) == [] and onnx_problems(rdf) == []
    assert set(core_test_all_weight_formats(rdf).values()) == {"passed"}
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.parametrize("variant", ["multi_task", "single_task"])
def test_partner_unet_has_the_unet_cut_reach(variant):
    """The halo machinery (`unet_context`) holds for PartnerUNet: with positive weights and input a
    grid-aligned crop changes both heads up to ``cut_reach - 1`` voxels inside it and none beyond."""
    from synapse_bmz.packaging.halo import unet_context

    torch.manual_seed(0)
    kw = dict(ndim=3, depth=3, pool_factors=[(1, 2, 2), (2, 2, 2)], kernel_sizes=[(1, 3, 3), (3, 3, 3), (3, 3, 3)])
    net = PartnerUNet(in_channels=1, base_channels=2, variant=variant, **kw).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
        # keep the sigmoid of the mask head out of saturation, where every difference is lost
        net.mask_decoder.head.weight.mul_(1e-4)
        net.mask_decoder.head.bias.zero_()
    ctx = unet_context(net.init_kwargs)
    assert tuple(net.divisibility) == ctx.divisibility
    size = [4 * b + 4 * d for b, d in zip(ctx.aligned_bound, ctx.divisibility)]
    x = torch.rand(1, 1, *size, dtype=torch.float64)
    net = net.double()
    with torch.no_grad():
        full = net(x)[0]
        for ax in range(3):
            a = 2 * ctx.aligned_bound[ax]
            crop = [slice(None)] * 3
            crop[ax] = slice(a, None)
            ref = full[(slice(None),) + tuple(crop)]
            out = net(x[(slice(None), slice(None)) + tuple(crop)])[0]
            for ch in (0, 1):   # the mask head and a vector head
                diff = ((out[ch] - ref[ch]).abs() / ref[ch].abs()).movedim(ax, 0)
                per_distance = diff.reshape(diff.shape[0], -1).amax(1)
                c = ctx.cut_reach[ax]
                stop = diff.shape[0] - ctx.aligned_bound[ax]
                assert float(per_distance[c:stop].max()) < 1e-12, (variant, ax, ch)
                assert float(per_distance[c - 1]) > 1e-15, (variant, ax, ch)


def test_warm_start_of_a_partner_config_starts_from_the_package_weights(tmp_path):
    """``--init-weights`` on a partner config: the run starts from the package's tensors (with a
    vanishing learning rate it ends there), a cold run does not, and a bad file is one line, exit 2."""
    import subprocess
    import sys

    from synapse_bmz.training.partners import partner_volumes, train_partners

    pkg = REPO / "model_packages" / "synaptic_polarity"
    text = (pkg / "train.yaml").read_text()
    text = (text.replace("n_train: 12", "n_train: 1").replace("shape: [16, 256, 256]", "shape: [8, 128, 128]")
            .replace("patch: [8, 128, 128]", "patch: [4, 64, 64]"))
    (tmp_path / "train.yaml").write_text(text)
    cfg = load_partner_config(tmp_path / "train.yaml")
    cfg.train.iterations = cfg.train.validate_every = 1
    cfg.train.learning_rate = 1e-12
    data = partner_volumes(cfg, [0])
    shipped = torch.load(pkg / "weights.state_dict.pt", weights_only=True)
    warm = train_partners(cfg, data, data, tmp_path / "warm", progress=False, init_weights=pkg / "weights.state_dict.pt")
    cold = train_partners(cfg, data, data, tmp_path / "cold", progress=False)
    key = next(k for k, v in shipped.items() if v.dtype.is_floating_point and v.numel() > 100)
    assert torch.allclose(warm.model.state_dict()[key], shipped[key], atol=1e-6)
    assert not torch.allclose(cold.model.state_dict()[key], shipped[key], atol=1e-3)
    (tmp_path / "junk.pt").write_bytes(b"not a state dict")
    r = subprocess.run([sys.executable, "-m", "synapse_bmz", "train", str(tmp_path / "train.yaml"), "--init-weights",
                        str(tmp_path / "junk.pt"), "-o", str(tmp_path / "pkg"), "--work-dir", str(tmp_path / "run"),
                        "--iterations", "1", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2 and "junk.pt" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "pkg").exists()


def test_extra_training_volumes_come_in_their_own_look(tmp_path):
    """``extra_training`` adds seeds simulated with more simulator keywords; validation and test
    seeds stay in the first look, and overlapping seeds are refused in one line."""
    from synapse_bmz.simulate.sstem import VNC_LIKE
    from synapse_bmz.training.partners import partner_volumes, training_volumes

    text = (REPO / "model_packages" / "synaptic_polarity" / "train.yaml").read_text()
    text = text.replace("n_train: 12", "n_train: 1").replace("shape: [16, 256, 256]", "shape: [4, 96, 96]")
    extra = ("    extra_training: {seeds: [5, 6], simulator_params: {membrane_width_nm: 28.0, noise_blur_px: 0.7}}\n"
             "    post_radius_nm")
    (tmp_path / "t.yaml").write_text(text.replace("    post_radius_nm", extra, 1))
    cfg = load_partner_config(tmp_path / "t.yaml")
    vols = training_volumes(cfg)
    assert [v.name for v in vols] == ["sstem seed 0", "sstem seed 5"]
    plain = partner_volumes(cfg, [5])[0]
    assert not np.array_equal(plain.raw, vols[1].raw)  # seed 5 in the extra look differs from seed 5 plain
    assert np.array_equal(partner_volumes(cfg, [0])[0].raw, vols[0].raw)
    assert VNC_LIKE["membrane_width_nm"] == 28.0
    (tmp_path / "u.yaml").write_text(text.replace("    post_radius_nm", extra.replace("[5, 6]", "[0, 2]"), 1))
    with pytest.raises(InputError, match="disjoint") as e:
        load_partner_config(tmp_path / "u.yaml")
    assert "\n" not in str(e.value)
    (tmp_path / "v.yaml").write_text(text.replace("    post_radius_nm", extra.replace("[5, 6]", "[6, 5]"), 1))
    with pytest.raises(InputError, match="low < high"):
        load_partner_config(tmp_path / "v.yaml")


@pytest.mark.parametrize("name", ["synaptic_polarity_vnc_like", "synaptic_polarity_mixed_look"])
def test_experiment_configs_load_and_keep_the_shipped_held_out_seeds(name):
    """The configs behind the variants in benchmarks/results/partners.json stay loadable and score on
    the shipped package's validation and test seeds."""
    cfg = load_partner_config(REPO / "benchmarks" / "configs" / f"{name}.yaml")
    shipped = load_partner_config(REPO / "model_packages" / "synaptic_polarity" / "train.yaml")
    assert cfg.data.simulation.test_seeds == shipped.data.simulation.test_seeds
    assert cfg.data.simulation.validation_seeds == shipped.data.simulation.validation_seeds
