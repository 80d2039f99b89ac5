"""Data for the examples: scikit-learn's 8x8 digits when installed, otherwise
generated 8x8 "digits" (one noisy stroke pattern per class) of the same shape."""
import numpy as np


def digits(seed=0):
    """(images (n, 8, 8) float32 in [0, 1], labels (n,) int64, source name)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return _generated_digits(seed) + ("generated 8x8 patterns (pip install scikit-learn "
                                          "for the real digits)",)
    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64), \
        "scikit-learn digits"


def _generated_digits(seed, per_class=180):
    rng = np.random.default_rng(seed)
    templates = rng.random((10, 8, 8)) > 0.6          # one fixed pattern per class
    labels = np.repeat(np.arange(10), per_class)
    images = templates[labels] * 0.8 + rng.normal(0, 0.25, (labels.size, 8, 8))
    return np.clip(images, 0, 1).astype(np.float32), labels


def split(x, y, test_fraction=0.2, seed=0):
    """Shuffle, then split into train and test parts."""
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(len(x) * (1 - test_fraction))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])
