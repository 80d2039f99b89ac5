"""A recurrent network learns to continue noisy sine waves.

Each sample is a window of 20 noisy readings of a sine wave (random
frequency and phase); the target is the next clean value. An LSTM reads the
window step by step and a Dense layer turns its last state into the guess.

    python examples/sequence_sine.py
"""
import numpy as np

import fastnn
from fastnn import layers, models, optimizers

STEPS = 20


def make_waves(n, rng, noise=0.1):
    """Windows (n, STEPS, 1) of noisy sine waves and the next clean value (n, 1)."""
    freq = rng.uniform(0.1, 0.5, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    t = np.arange(STEPS + 1)
    clean = np.sin(freq * t + phase)
    noisy = clean[:, :STEPS] + noise * rng.standard_normal((n, STEPS))
    return noisy[:, :, None].astype(np.float32), clean[:, STEPS:].astype(np.float32)


def build_model():
    model = models.Sequential([
        layers.LSTM(32, input_shape=(STEPS, 1)),     # reads the window, keeps its last state
        layers.Dense(1),                             # the next value
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    return model


def main(epochs=8):
    fastnn.set_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = make_waves(2048, rng)
    x_test, y_test = make_waves(512, rng)

    model = build_model()
    model.summary()
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, validation_split=0.1, verbose=2)

    mse, mae = model.evaluate(x_test, y_test, verbose=0)
    # A simple guess to beat: "the next value equals the last noisy reading".
    naive = float(np.mean((x_test[:, -1, :] - y_test) ** 2))
    print(f"test mse {mse:.4f} (mae {mae:.4f}); repeating the last reading gives mse {naive:.4f}")
    guesses = model.predict(x_test[:3]).ravel()
    for guess, truth in zip(guesses, y_test[:3].ravel()):
        print(f"  predicted {guess:+.3f}, true next value {truth:+.3f}")
    return mse, naive


if __name__ == "__main__":
    fastnn.show_config()
    main()
