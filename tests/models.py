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


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the block's input (an identity shortcut), then ReLU."""

    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)


def resnet_digits():
    """A ResNet-style CNN for the 8x8 digits: stem with BatchNorm, max pooling, two residual blocks,
    global average pooling, a Linear classifier."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         ResidualBlock(8), ResidualBlock(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


class RowsRecurrent(nn.Module):
    """Reads an 8x8 digit row by row (8 time steps of 8 pixels) and classifies from the last state."""

    def __init__(self, cell, hidden=16):
        super().__init__()
        self.rnn = cell(8, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, x):
        out, _ = self.rnn(x.reshape(x.shape[0], -1, 8))
        return self.fc(out[:, -1, :])


def lstm_digits():
    return RowsRecurrent(nn.LSTM)


def gru_digits():
    return RowsRecurrent(nn.GRU)


def digits_cnn():
    """The demo's convolutional network for the 8x8 digits (for --arch)."""
    from nngraph import digits

    return digits.build("cnn")


def digits_tensors():
    """The digits test images as a Dataset of (image, label) pairs (for --data package.module:factory)."""
    from torch.utils.data import TensorDataset

    from nngraph import digits

    data = digits.load()
    return TensorDataset(data.test_x, data.test_y)


def digits_loader():
    """The digits test images as a DataLoader of batches of 64 (for --data package.module:factory)."""
    from torch.utils.data import DataLoader

    return DataLoader(digits_tensors(), batch_size=64)
