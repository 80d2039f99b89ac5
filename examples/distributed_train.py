"""Data-parallel training over MPI: an ordinary fastnn program plus one argument.

    pip install "fastnn[mpich]"
    mpiexec -n 2 python -m mpi4py examples/distributed_train.py    # 2 ranks
    python examples/distributed_train.py                           # 1 process

Every rank runs this same script on the same data; each trains on its slice of
every global batch of ranks x batch_size samples, and the gradients are
averaged, so all ranks hold the same model. Only rank 0 (the chief) prints
progress. Without mpi4py the script trains in one process, without MPI.
"""
import sys

import fastnn
from fastnn import layers, models, utils

from _data import digits, split


def strategy_or_none():
    """An MPI strategy, or None (one process) when mpi4py is not installed."""
    try:
        return fastnn.distributed.MPI()
    except ImportError as exc:
        print(f"training in one process: {exc}", file=sys.stderr)
        return None


def main():
    strategy = strategy_or_none()
    chief = strategy is None or strategy.is_chief
    if strategy is not None and chief:
        print(f"{strategy.size} rank(s), {fastnn.get_num_threads()} thread(s) each")

    fastnn.set_seed(0)                 # rank 0's initial weights are broadcast anyway
    images, labels, source = digits()
    (x_train, y_train), (x_test, y_test) = split(images.reshape(len(images), -1), labels)

    model = models.Sequential([
        layers.Dense(64, input_shape=(64,)),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, utils.to_categorical(y_train, 10), epochs=8, batch_size=32,
              validation_split=0.1, verbose=2, distributed=strategy)

    # every rank holds the same weights; one of them reports
    _, accuracy = model.evaluate(x_test, utils.to_categorical(y_test, 10), verbose=0)
    if chief:
        print(f"data: {source}")
        print(f"test accuracy {accuracy:.3f}")
        if strategy is not None:
            print(f"time in communication {strategy.comm_seconds:.3f} s")
    return accuracy


if __name__ == "__main__":
    main()
