"""Hugging Face transformers models as export workloads: tiny configs, random weights (nothing is
downloaded), exported float and run in onert against eager PyTorch, with and without an attention
mask. Their graphs carry what hand-written test models do not: position ids from
`torch.arange(seq_len)`, masks built from the input with `new_ones`, `&`, `cumsum`, `diff`,
`to(device=...)`, GPT-2's `addmm` layers and Llama's rotary embedding, RMS norm and grouped
key / value heads.

Needs `transformers` (requirements/dev.txt pins it; it does not depend on torch).
"""
import numpy as np
import pytest
import torch

import torch_circle

transformers = pytest.importorskip("transformers", reason="the Hugging Face model tests need transformers "
                                                         "(pip install -r requirements/dev.txt)")

VOCAB, SEQ = 64, 8


def _config(name):
    t = transformers
    if name == "bert":
        return t.BertModel, t.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                         intermediate_size=64, max_position_embeddings=32)
    if name == "distilbert":
        return t.DistilBertModel, t.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                                     max_position_embeddings=32)
    if name == "gpt2":
        return t.GPT2Model, t.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                         bos_token_id=0, eos_token_id=0)
    if name == "llama":  # RoPE, RMS norm, grouped-query attention (4 heads, 2 key / value heads), SiLU MLP
        return t.LlamaModel, t.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                           num_key_value_heads=2, intermediate_size=64, max_position_embeddings=32)
    raise ValueError(name)


class LastHiddenState(torch.nn.Module):
    """The model's last hidden state, from token ids and (optionally) an attention mask."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=False)[0]


def _inputs(with_mask):
    ids = torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(0))
    if not with_mask:
        return (ids,)
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, SEQ - 3:] = 0  # the second sequence is padded at the end
    return ids, mask


@pytest.mark.parametrize("with_mask", [False, True], ids=["no_mask", "mask"])
@pytest.mark.parametrize("name", ["bert", "distilbert", "gpt2", "llama"])
def test_float_export_matches_eager_in_onert(name, with_mask):
    model_class, config = _config(name)
    torch.manual_seed(0)
    model = LastHiddenState(model_class(config)).eval()
    inputs = _inputs(with_mask)
    with torch.no_grad():
        expected = model(*inputs).numpy()
    cm = torch_circle.export(model, inputs)
    (actual,) = cm.run(*inputs)
    assert actual.shape == expected.shape
    error = np.abs(actual - expected).max() / np.abs(expected).max()
    assert error <= 1e-4, f"{name}: largest difference {error:.2e} of the largest output"
