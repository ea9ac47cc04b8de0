"""Reference PSNR and SSIM values from scikit-image for the `datasets` crate's metric tests.

Builds three small deterministic u8 RGB image pairs with numpy (fixed seed), writes them as
PNGs under `datasets/tests/fixtures/quality/`, and records scikit-image's

    peak_signal_noise_ratio(a, b, data_range=255)
    structural_similarity(a, b, channel_axis=-1, data_range=255)

for each pair in `expected.json` there. The Rust test (`datasets/tests/quality_fixtures.rs`)
loads the PNGs and checks PSNR to 1e-9 relative and SSIM to 1e-6 absolute.

Run from the repository root with the pinned versions of tools/requirements.txt:

    python tools/make_quality_fixtures.py
"""

import json
from pathlib import Path

import numpy as np
import skimage
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

OUT = Path(__file__).resolve().parent.parent / "datasets" / "tests" / "fixtures" / "quality"
SEED = 20240601


def smooth_pattern(height, width, phase):
    """Sines and a radial bump per channel: smooth, with structure at several scales."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for c in range(3):
        wave = np.sin(x / (3.0 + c) + phase * (c + 1)) * np.cos(y / (4.0 + 2 * c) - phase)
        bump = np.exp(-((x - width * 0.6) ** 2 + (y - height * 0.4) ** 2) / (2 * (6.0 + c) ** 2))
        channels.append(110 + 80 * wave + 60 * bump)
    return np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def box_blur(img, radius):
    """Mean over a (2 radius + 1)^2 window with edge padding, per channel, rounded to u8."""
    padded = np.pad(img.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), "edge")
    height, width = img.shape[:2]
    side = 2 * radius + 1
    total = np.zeros(img.shape, dtype=np.float64)
    for dy in range(side):
        for dx in range(side):
            total += padded[dy : dy + height, dx : dx + width]
    return np.clip(np.rint(total / side**2), 0, 255).astype(np.uint8)


def make_pairs(rng):
    """(name, a, b): noise on a smooth image, a blur, and a quantised shift of a texture."""
    smooth = smooth_pattern(32, 40, phase=0.3)
    noisy = np.clip(np.rint(smooth + rng.normal(0.0, 12.0, smooth.shape)), 0, 255)

    scene = smooth_pattern(32, 40, phase=1.7)
    scene[8:20, 10:22] = [230, 40, 60]  # a flat block with sharp edges
    blurred = box_blur(scene, 1)

    # Odd, non-square shape; blocky random texture, then coarse quantisation and a shift.
    texture = rng.integers(0, 256, size=(9, 12, 3)).repeat(3, axis=0).repeat(3, axis=1)
    texture = texture[:27, :35].astype(np.uint8)
    quantised = np.clip((texture // 32) * 32 + 16 + 9, 0, 255)

    return [
        ("noise", smooth, noisy.astype(np.uint8)),
        ("blur", scene, blurred),
        ("quantise", texture, quantised.astype(np.uint8)),
    ]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    pairs = []
    for name, a, b in make_pairs(rng):
        files = {}
        for side, img in (("a", a), ("b", b)):
            filename = f"{name}_{side}.png"
            Image.fromarray(img).save(OUT / filename, optimize=True)
            # The PNG must hold exactly the array the metrics were computed on.
            assert np.array_equal(np.asarray(Image.open(OUT / filename).convert("RGB")), img)
            files[side] = filename
        pairs.append(
            {
                "name": name,
                "a": files["a"],
                "b": files["b"],
                "height": int(a.shape[0]),
                "width": int(a.shape[1]),
                "psnr": float(peak_signal_noise_ratio(a, b, data_range=255)),
                "ssim": float(structural_similarity(a, b, channel_axis=-1, data_range=255)),
            }
        )
    expected = {
        "generator": "tools/make_quality_fixtures.py",
        "scikit_image": skimage.__version__,
        "numpy": np.__version__,
        "seed": SEED,
        "pairs": pairs,
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    for pair in pairs:
        print(f"{pair['name']:>9}: psnr {pair['psnr']:.6f} dB, ssim {pair['ssim']:.6f}")


if __name__ == "__main__":
    main()
