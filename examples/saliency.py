"""Saliency maps: which pixels move a digit classifier's decision.

Trains a small classifier on 8x8 digits, then writes saliency.png: for a few
test images, the image and |d score / d pixel| of its predicted class
(fastnn.inspect.input_gradients). Needs matplotlib (pip install "fastnn[plot]").

    python examples/saliency.py [output.png]
"""
import sys

import numpy as np
from _data import digits, split

import fastnn
from fastnn import inspect, layers, models


def train_classifier(x, y):
    model = models.Sequential([
        layers.Dense(128, activation="relu", input_shape=(64,)),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=25, batch_size=32, verbose=0)
    return model


def draw(path, images, saliency, predicted):
    try:
        import matplotlib
    except ImportError:
        sys.exit('saliency.py needs matplotlib: pip install "fastnn[plot]"')
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(images)
    fig, axes = plt.subplots(2, count, figsize=(1.6 * count, 3.4))
    for i in range(count):
        axes[0, i].imshow(images[i], cmap="gray_r")
        axes[0, i].set_title(f"pred {predicted[i]}", fontsize=9)
        axes[1, i].imshow(saliency[i], cmap="hot")
        for ax in axes[:, i]:
            ax.axis("off")
    axes[0, 0].text(-3, 3.5, "image", rotation=90, fontsize=9)
    axes[1, 0].text(-3, 3.5, "saliency", rotation=90, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(path="saliency.png"):
    fastnn.set_seed(0)
    images, labels, source = digits()
    (x, y), (x_test, y_test) = split(images.reshape(len(images), -1), labels)
    model = train_classifier(x, y)
    print(f"data: {source}; test accuracy {model.evaluate(x_test, y_test, verbose=0)[1]:.3f}")

    shown = x_test[:8]
    predicted = model.predict(shown).argmax(axis=1)
    grads = inspect.input_gradients(model, shown, target=predicted)
    draw(path, shown.reshape(-1, 8, 8), np.abs(grads).reshape(-1, 8, 8), predicted)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
