"""Writes model files with fastnn 0.1.0 (format version 1) for the compatibility tests.

Kept for the record: run from this folder with fastnn 0.1.0 installed (it was,
on the compiled backend); later versions must keep loading what it wrote.
"""
import numpy as np
import fastnn
from fastnn import layers, models, optimizers

fastnn.set_seed(0)
rng = np.random.default_rng(0)

# 1. an MLP, compiled with Adam and trained a little (optimizer state saved)
x = rng.normal(size=(64, 10)).astype("float32")
y = rng.normal(size=(64, 1)).astype("float32")
mlp = models.Sequential([layers.Dense(8, activation="relu", input_shape=(10,)),
                         layers.Dropout(0.1), layers.Dense(1)], name="mlp")
mlp.compile(optimizer=optimizers.Adam(1e-2), loss="mse", metrics=["mae"])
mlp.fit(x, y, epochs=2, batch_size=16, verbose=0)
mlp.save("mlp.fnn")
np.save("mlp_x.npy", x[:5]); np.save("mlp_pred.npy", mlp.predict(x[:5], verbose=0))
mlp.save_weights("mlp_weights.fnn")

# 2. a small convnet with BatchNormalization and pooling, uncompiled
cnn = models.Sequential([layers.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                         layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Flatten(),
                         layers.Dense(3, activation="softmax")], name="cnn")
xi = rng.normal(size=(4, 8, 8, 1)).astype("float32")
cnn.save("cnn.fnn")
np.save("cnn_x.npy", xi); np.save("cnn_pred.npy", cnn.predict(xi, verbose=0))

# 3. embedding with mask_zero into a bidirectional LSTM, SGD with a schedule
seq = models.Sequential([layers.Embedding(20, 6, mask_zero=True, input_shape=(7,)),
                         layers.Bidirectional(layers.LSTM(5)), layers.Dense(2)], name="seq")
sched = optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
seq.compile(optimizer=optimizers.SGD(sched, momentum=0.9), loss="sparse_categorical_crossentropy")
xs = rng.integers(0, 20, size=(16, 7)); xs[:, 5:] = 0
ys = rng.integers(0, 2, size=(16,))
seq.fit(xs, ys, epochs=1, batch_size=8, verbose=0)
seq.save("seq.fnn")
np.save("seq_x.npy", xs[:4]); np.save("seq_pred.npy", seq.predict(xs[:4], verbose=0))
print(fastnn.__version__)

# 4. the MLP loaded back, trained one more epoch (the bitwise-resume reference)
resumed = models.load_model("mlp.fnn")
rng = np.random.default_rng(1)
rx = rng.normal(size=(32, 10)).astype("float32")
ry = rng.normal(size=(32, 1)).astype("float32")
np.save("resume_x.npy", rx)
np.save("resume_y.npy", ry)
fastnn.set_seed(1)
resumed.fit(rx, ry, epochs=1, batch_size=8, shuffle=False, verbose=0)
np.savez("mlp_resumed_weights.npz", *resumed.get_weights())
