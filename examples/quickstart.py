"""Quick start: a Keras-style regression MLP trained on generated data.

    python examples/quickstart.py
"""
import numpy as np

import fastnn
from fastnn import layers, models


def make_data(n, rng):
    x = rng.standard_normal((n, 10)).astype(np.float32)
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] - 0.3 * x[:, 3]
    return x, y.astype(np.float32)


def main():
    fastnn.set_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = make_data(8192, rng)
    x_test, y_test = make_data(1024, rng)

    model = models.Sequential()
    model.add(layers.Dense(64, activation="relu", input_shape=(10,)))
    model.add(layers.Dense(32, activation="relu"))
    model.add(layers.Dense(1, activation="linear"))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.summary()

    history = model.fit(x_train, y_train, epochs=10, batch_size=32, validation_split=0.1,
                        verbose=2)
    loss, mae = model.evaluate(x_test, y_test, verbose=0)
    print(f"test mse {loss:.4f}, mae {mae:.4f} (target variance {y_test.var():.4f})")
    print("first predictions:", model.predict(x_test[:3]).ravel(), "true:", y_test[:3])
    return history


if __name__ == "__main__":
    fastnn.show_config()
    main()
