"""Optional peer rows: the same model workloads in PyTorch, when it is installed.

torch is imported only by the functions here, and only when
``torch_available()`` says it can be; fastnn never requires it. The PyTorch
model is built from the fastnn model's initial weights, so its first outputs
can be checked against fastnn's before it is timed.
"""
import contextlib
import importlib.util

import numpy as np

from fastnn.bench.checks import compare

PEER = "torch"


def torch_available():
    """Whether torch can be imported (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def supports(model, workload=None):
    """Whether a PyTorch twin of ``model`` exists: the workload's own builder, or
    ``torch_mlp``'s mirror of Dense layers (relu/linear/softmax), and for CNNs (W3)
    Conv2D (relu/linear; "valid", or "same" at stride 1), "valid" MaxPooling2D and
    Flatten."""
    if workload is not None and workload.torch_twin is not None:
        return True
    return all(_supported_layer(layer) for layer in model.layers)


def twin(model, workload=None):
    """The PyTorch module of ``model`` (logits out: no final softmax)."""
    if workload is not None and workload.torch_twin is not None:
        return TWINS[workload.torch_twin](model)
    return torch_mlp(model)


def torch_residual_mlp(model):
    """C1 in PyTorch: the same Dense layers and residual blocks, weights copied."""
    import torch
    from torch import nn

    def linear(layer):
        module = nn.Linear(layer.kernel.shape[0], layer.units)
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(layer.kernel.value.T.copy()))
            module.bias.copy_(torch.from_numpy(layer.bias.value.copy()))
        return module

    class Block(nn.Module):
        def __init__(self, block):
            super().__init__()
            self.up, self.down = linear(block.up), linear(block.down)
            self.gain = nn.Parameter(torch.from_numpy(block.gain.value.copy()))

        def forward(self, x):
            return x + self.gain * self.down(torch.relu(self.up(x)))

    first, block1, block2, last = [layer for layer in model.layers
                                   if type(layer).__name__ != "InputLayer"]
    return nn.Sequential(linear(first), nn.ReLU(), Block(block1), Block(block2), linear(last))


def _supported_layer(layer):
    kind = type(layer).__name__
    if kind == "Dense":
        return layer.activation in ("relu", "linear", "softmax")
    if kind == "Conv2D":
        return (layer.activation in ("relu", "linear")
                and (layer.padding == "valid" or max(layer.strides) == 1))
    if kind == "MaxPooling2D":
        return layer.padding == "valid"
    if kind in ("SimpleRNN", "LSTM"):      # W4: torch.nn.RNN / LSTM, last state
        return (layer.activation == "tanh" and layer.use_bias and not layer.go_backwards
                and not layer.return_sequences and layer.dropout == 0.0
                and getattr(layer, "recurrent_activation", "sigmoid") == "sigmoid")
    return kind == "Flatten"


def torch_mlp(model):
    """A torch.nn.Sequential equal to a fastnn MLP, returning logits (no final softmax)."""
    import torch
    from torch import nn

    class Permute(nn.Module):
        """fastnn is NHWC, torch's convolutions NCHW: convert at the boundaries."""

        def __init__(self, *dims):
            super().__init__()
            self.dims = dims

        def forward(self, x):
            return x.permute(*self.dims)

    modules, images = [], False
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "MaxPooling2D") and not images:
            modules.append(Permute(0, 3, 1, 2))
            images = True
        if kind == "Flatten":
            if images:       # flatten in fastnn's (H, W, C) order
                modules.append(Permute(0, 2, 3, 1))
                images = False
            modules.append(nn.Flatten())
            continue
        if kind == "MaxPooling2D":
            modules.append(nn.MaxPool2d(layer.pool_size, layer.strides))
            continue
        if kind in ("SimpleRNN", "LSTM"):
            modules.append(_torch_recurrent(layer))
            continue
        if kind == "Conv2D":
            kernel = layer.kernel.value.transpose(3, 2, 0, 1)       # (F, C, KH, KW)
            linear = nn.Conv2d(kernel.shape[1], layer.filters, layer.kernel_size,
                               stride=layer.strides, dilation=layer.dilation_rate,
                               padding=layer.padding, bias=layer.use_bias)
        else:
            kernel = layer.kernel.value.T
            linear = nn.Linear(layer.kernel.shape[0], layer.units, bias=layer.use_bias)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(kernel.copy()))
            if layer.use_bias:
                linear.bias.copy_(torch.from_numpy(layer.bias.value.copy()))
        modules.append(linear)
        if layer.activation == "relu":
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


@contextlib.contextmanager
def torch_threads(n):
    """torch.set_num_threads(n) for the block; the previous count restored after."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchRunner:
    """One workload in PyTorch: ``epoch()`` trains one shuffled epoch, ``predict()``
    runs inference in batches, ``outputs(xb)`` gives what fastnn's predict gives."""

    def __init__(self, model, x, y, batch_size, seed, workload=None):
        import torch
        from torch import nn

        self.torch = torch
        self.net = twin(model, workload)
        self.softmax = getattr(model.layers[-1], "activation", None) == "softmax"
        self.batch_size = batch_size
        self.x = torch.from_numpy(np.ascontiguousarray(x))
        if hasattr(self.net, "loss"):          # a twin with a loss of its own (W6: per token)
            self.y = self.net.prepare_targets(y)
            self.loss_fn = self.net.loss
        elif self.softmax:    # softmax + categorical cross-entropy == CrossEntropyLoss on logits
            self.y = torch.from_numpy(np.argmax(y, axis=1))
            self.loss_fn = nn.CrossEntropyLoss()
        else:
            self.y = torch.from_numpy(np.ascontiguousarray(y))
            self.loss_fn = nn.MSELoss()
        opt = model.optimizer
        adam = dict(lr=opt.learning_rate, betas=(opt.beta_1, opt.beta_2), eps=opt.epsilon)
        self.opt = (torch.optim.AdamW(self.net.parameters(), weight_decay=opt.weight_decay,
                                      **adam) if opt.weight_decay
                    else torch.optim.Adam(self.net.parameters(), **adam))
        self.gen = torch.Generator().manual_seed(seed)

    def outputs(self, xb):
        with self.torch.inference_mode():
            out = self.net(self.torch.from_numpy(np.ascontiguousarray(xb)))
            if self.softmax:
                out = self.torch.softmax(out, dim=1)
        return out.numpy()

    def epoch(self):
        n, b = self.x.shape[0], self.batch_size
        order = self.torch.randperm(n, generator=self.gen)
        xs, ys = self.x[order], self.y[order]
        for start in range(0, n, b):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.net(xs[start:start + b]), ys[start:start + b])
            loss.backward()
            self.opt.step()

    def generate(self, steps):
        """Greedy generation of ``steps`` tokens after each prompt, in batches."""
        n, b = self.x.shape[0], self.batch_size
        with self.torch.inference_mode():
            for start in range(0, n, b):
                self.net.generate(self.x[start:start + b], steps)

    def predict(self):
        n, b = self.x.shape[0], self.batch_size
        with self.torch.inference_mode():
            for start in range(0, n, b):
                out = self.net(self.x[start:start + b])
                if self.softmax:
                    self.torch.softmax(out, dim=1)


def _torch_gpt(model):
    from fastnn.bench.torch_gpt import torch_gpt
    return torch_gpt(model)


TWINS = {"residual_mlp": torch_residual_mlp, "gpt": _torch_gpt}


def check_torch(runner, fastnn_outputs, xb, label):
    """Do the PyTorch model's outputs for xb match fastnn's (same weights)?"""
    return compare({"outputs": runner.outputs(xb)}, {"outputs": fastnn_outputs},
                   f"{label} {PEER} vs numpy")


def _torch_recurrent(layer):
    """A torch module equal to a fastnn SimpleRNN / LSTM returning its last state.

    torch's LSTM gates are i, f, g, o -- Keras' i, f, c, o -- so kernels copy
    as their transposes; fastnn's one bias goes to bias_ih, bias_hh is zero.
    """
    import torch
    from torch import nn

    cls = nn.LSTM if type(layer).__name__ == "LSTM" else nn.RNN
    rnn = cls(layer.kernel.shape[0], layer.units, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(layer.kernel.value.T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(layer.recurrent_kernel.value.T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(layer.bias.value.copy()))
        rnn.bias_hh_l0.zero_()

    class LastState(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            return self.rnn(x)[0][:, -1]

    return LastState()
