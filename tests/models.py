"""Architectures the tests save and reload (importable for --arch)."""

import torch
import torch.nn as nn


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(3, 4, 3, stride=2), nn.Flatten(), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


def small_mlp():
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))


def save_small_mlp(path, seed=0):
    """Saves the state_dict of a seeded small_mlp at `path` (the name may carry a step) and returns it."""
    torch.manual_seed(seed)
    torch.save(small_mlp().state_dict(), path)
    return path
