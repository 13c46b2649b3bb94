"""Real data that ships with scikit-learn: the 8x8 digits images (1,797 of them, no download),
small networks for them, and a seeded training loop that hands every epoch's snapshot and
its test metrics to a callback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

ARCHITECTURES = ("mlp", "cnn")


@dataclass
class Digits:
    train_x: "object"  # torch tensors: images (N, 1, 8, 8) in [0, 1] and labels (N,)
    train_y: "object"
    test_x: "object"
    test_y: "object"


def load(seed: int = 0, test_share: float = 0.3) -> Digits:
    import torch
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(len(labels) * (1 - test_share))
    x = torch.tensor(images[order] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(labels[order], dtype=torch.long)
    return Digits(x[:cut], y[:cut], x[cut:], y[cut:])


def build(architecture: str, init_scale: float = 1.0, seed: int = 0):
    """A small fully connected or convolutional classifier, weights scaled by `init_scale`."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if architecture == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                              nn.Linear(16, 10))
    elif architecture == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1),
                              nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    else:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(init_scale)
    return model


def evaluate(model, x, y) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on a data split."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits = model(x)
        return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def train(model, data: Digits, epochs: int, on_epoch: Callable[[int, object, dict], None], seed: int = 0,
          learning_rate: float = 0.05, batch_size: int = 64) -> None:
    """SGD with momentum; `on_epoch(epoch, model, metrics)` after every epoch, and for epoch 0 at init."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9)
    on_epoch(0, model, _metrics(model, data, train_loss=None))
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for batch in torch.randperm(len(data.train_y), generator=generator).split(batch_size):
            optimiser.zero_grad()
            loss = F.cross_entropy(model(data.train_x[batch]), data.train_y[batch])
            loss.backward()
            optimiser.step()
            losses.append(loss.detach().item())
        model.eval()
        on_epoch(epoch, model, _metrics(model, data, train_loss=float(np.mean(losses))))


def _metrics(model, data: Digits, train_loss) -> dict:
    model.eval()
    accuracy, loss = evaluate(model, data.test_x, data.test_y)
    metrics = {"test_accuracy": accuracy, "test_loss": loss}
    if train_loss is not None:
        metrics["train_loss"] = train_loss
    return metrics
