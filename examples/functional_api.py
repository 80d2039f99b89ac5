"""Keras' functional API on fastnn: the guide's toy ResNet and its multi-input,
multi-output ticket model, unchanged but for the import.

    python examples/functional_api.py

fastnn downloads nothing, so the data are generated: images whose class is
the brightest of three colour channels for the ResNet, and random tickets
(title and body word indices, tags) whose priority and department depend on
their words for the ticket model.
"""
import numpy as np

import fastnn as keras            # the only change from a Keras script
from fastnn import layers


def toy_resnet(num_classes, size):
    inputs = keras.Input(shape=(size, size, 3), name="img")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)

    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])

    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_3_output = layers.add([x, block_2_output])

    x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="toy_resnet")


def colour_images(n, size, rng):
    labels = rng.integers(0, 3, n)
    x = rng.uniform(0.0, 0.6, size=(n, size, size, 3)).astype("float32")
    x[np.arange(n), :, :, labels] += 0.4
    return x, keras.utils.to_categorical(labels, 3)


def ticket_model(num_tags, num_words, num_departments):
    title_input = keras.Input(shape=(None,), name="title")   # variable-length word indices
    body_input = keras.Input(shape=(None,), name="body")
    tags_input = keras.Input(shape=(num_tags,), name="tags")

    title_features = layers.Embedding(num_words, 64)(title_input)
    body_features = layers.Embedding(num_words, 64)(body_input)
    title_features = layers.LSTM(128)(title_features)
    body_features = layers.LSTM(32)(body_features)
    x = layers.concatenate([title_features, body_features, tags_input])

    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(num_departments, name="department")(x)
    return keras.Model(inputs=[title_input, body_input, tags_input],
                       outputs={"priority": priority_pred, "department": department_pred})


def tickets(n, num_tags, num_words, num_departments, rng):
    title = rng.integers(1, num_words, size=(n, 10))
    body = rng.integers(1, num_words, size=(n, 40))
    tags = rng.integers(0, 2, size=(n, num_tags)).astype("float32")
    # urgent words (low indices) raise the priority; the tags pick the department
    priority = (title < num_words // 10).mean(axis=1, keepdims=True) * 5
    choice = np.argmax(tags[:, :num_departments] + 0.1 * np.arange(num_departments), axis=1)
    department = keras.utils.to_categorical(choice, num_departments)
    return (title, body, tags), (np.clip(priority, 0, 1).astype("float32"), department)


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)

    model = toy_resnet(num_classes=3, size=24)
    model.summary()
    x_train, y_train = colour_images(640, 24, rng)
    x_test, y_test = colour_images(160, 24, rng)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["acc"])
    model.fit(x_train, y_train, batch_size=64, epochs=3, validation_split=0.2, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"toy ResNet test accuracy {accuracy:.3f}")

    num_tags, num_words, num_departments = 12, 1000, 4
    model = ticket_model(num_tags, num_words, num_departments)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
                  loss={"priority": keras.losses.BinaryCrossentropy(from_logits=True),
                        "department": keras.losses.CategoricalCrossentropy(from_logits=True)},
                  loss_weights={"priority": 1.0, "department": 0.2},
                  metrics={"department": ["accuracy"]})
    (title, body, tags), (priority, department) = tickets(1280, num_tags, num_words,
                                                          num_departments, rng)
    history = model.fit({"title": title, "body": body, "tags": tags},
                        {"priority": priority, "department": department},
                        epochs=4, batch_size=32, verbose=2)
    first, last = history.history["loss"][0], history.history["loss"][-1]
    print(f"ticket model loss {first:.3f} -> {last:.3f}; department accuracy "
          f"{history.history['department_accuracy'][-1]:.3f}")


if __name__ == "__main__":
    main()
