"""A Keras-style convnet script that runs on fastnn by changing one import.

    python examples/keras_convnet.py

Everything below the import is plain Keras (Sequential, Input, Conv2D,
MaxPooling2D, Flatten, Dropout, Dense, to_categorical, compile/fit/evaluate).
fastnn downloads nothing, so instead of MNIST the data are generated 16x16
images of four shapes (a box, a cross, a horizontal and a vertical bar) at
random positions, with noise.
"""
import numpy as np

import fastnn as keras            # the only change from a Keras script
from fastnn import layers

NUM_CLASSES = 4
INPUT_SHAPE = (16, 16, 1)


def make_shapes(n, rng, side=16):
    """Noisy images (n, side, side, 1) in [0, 1] of one of four shapes, and labels (n,)."""
    x = rng.normal(0.0, 0.15, size=(n, side, side)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, size=n)
    r, c = rng.integers(3, side - 4, size=(2, n))
    for k in range(n):
        i, j = r[k], c[k]
        if y[k] == 0:                                    # a 5x5 box outline
            x[k, i - 2:i + 3, [j - 2, j + 2]] += 1.0
            x[k, [i - 2, i + 2], j - 2:j + 3] += 1.0
        elif y[k] == 1:                                  # a cross
            x[k, i - 2:i + 3, j] += 1.0
            x[k, i, j - 2:j + 3] += 1.0
        elif y[k] == 2:                                  # a horizontal bar
            x[k, i, j - 3:j + 4] += 1.0
        else:                                            # a vertical bar
            x[k, i - 3:i + 4, j] += 1.0
    return np.clip(x, 0.0, 1.0)[..., None], y


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = make_shapes(2000, rng)
    x_test, y_test = make_shapes(500, rng)
    print("x_train shape:", x_train.shape, "-", x_train.shape[0], "train samples,",
          x_test.shape[0], "test samples")

    # convert class vectors to binary class matrices
    y_train = keras.utils.to_categorical(y_train, NUM_CLASSES)
    y_test = keras.utils.to_categorical(y_test, NUM_CLASSES)

    model = keras.Sequential([
        keras.Input(shape=INPUT_SHAPE),
        layers.Conv2D(16, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(NUM_CLASSES, activation="softmax"),
    ])
    model.summary()

    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=8, validation_split=0.1, verbose=2)

    score = model.evaluate(x_test, y_test, verbose=0)
    print("Test loss:", score[0])
    print("Test accuracy:", score[1])
    return score


if __name__ == "__main__":
    main()
