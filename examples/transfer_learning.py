"""Transfer learning: pretrain on digits 0-4, freeze the body, fine-tune a new
head on digits 5-9 with a lower learning rate.

    python examples/transfer_learning.py
"""
import numpy as np
from _data import digits, split

import fastnn
from fastnn import layers, models, optimizers


def main():
    fastnn.set_seed(0)
    images, labels, source = digits()
    print(f"data: {source}, {len(images)} images")
    x = images.reshape(len(images), -1)
    first, second = labels < 5, labels >= 5

    # 1. Pretrain a classifier of digits 0-4.
    (xa, ya), (xa_test, ya_test) = split(x[first], labels[first])
    base = models.Sequential([
        layers.Dense(128, activation="relu", input_shape=(64,), name="body_1"),
        layers.Dense(64, activation="relu", name="body_2"),
        layers.Dense(5, activation="softmax", name="head_0_4"),
    ])
    base.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    base.fit(xa, ya, epochs=20, batch_size=32, verbose=0)
    print(f"pretrained on 0-4: test accuracy {base.evaluate(xa_test, ya_test, verbose=0)[1]:.3f}")

    # 2. Reuse its body, frozen, under a new head for digits 5-9.
    (xb, yb), (xb_test, yb_test) = split(x[second], labels[second] - 5)
    body = base.layers[:-1]
    for layer in body:
        layer.trainable = False
    model = models.Sequential(body + [layers.Dense(5, activation="softmax", name="head_5_9")])
    model.compile(optimizer=optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    frozen = body[0].get_weights()[0].copy()
    model.fit(xb, yb, epochs=15, batch_size=32, verbose=0)
    print(f"new head on 5-9 (body frozen): test accuracy "
          f"{model.evaluate(xb_test, yb_test, verbose=0)[1]:.3f}")
    assert np.array_equal(frozen, body[0].get_weights()[0]), "a frozen layer changed"

    # 3. Unfreeze and fine-tune everything with a small learning rate.
    for layer in body:
        layer.trainable = True
    model.optimizer.learning_rate = 1e-4
    model.fit(xb, yb, epochs=5, batch_size=32, verbose=0)
    print(f"after fine-tuning all layers: test accuracy "
          f"{model.evaluate(xb_test, yb_test, verbose=0)[1]:.3f}")


if __name__ == "__main__":
    main()
