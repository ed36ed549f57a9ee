"""BARTScore (Yuan et al. 2021, "BARTScore: Evaluating Generated Text as Text Generation",
NeurIPS): how likely a seq2seq BART finds one text when it reads another, as the mean
log-probability of the target's tokens (its <s> and </s> included) given the source.

The `bartscore` metric of summaries reads the reference given the generated summary, the
paper's recall direction (h -> r) and the one Me-LLaMA reports (BIDS-Xu-Lab/Me-LLaMA,
src/tasks/vital_measure.py: `bart_scorer.score(srcs=preds, tgts=golds)`). Scores are log-probs:
at most 0, higher is better. An empty summary is scored like any other text, as the bare
<s> </s> pair.

`facebook/bart-large-cnn` is the default encoder-decoder (the paper's BARTScore-CNN); any other
value is a hub id or local directory of a BART checkpoint. `tiny-bart` is a 2-layer BART with
random weights over the embedded tiny tokenizer, built in-process for tests and the demo; its
scores measure nothing and only exercise the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

DEFAULT_MODEL = "facebook/bart-large-cnn"
TINY = "tiny-bart"
TINY_SEED = 0


@cache
def tiny_bart() -> tuple[Any, Any]:
    """The offline test BART and its tokenizer (same weights on every call, per TINY_SEED)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from medarena.tiny import default_corpus, train_tokenizer

    tokenizer = train_tokenizer(default_corpus(), vocab_size=1024, chat_template=None)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,  # as in BART: </s> starts decoding
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(TINY_SEED)
    return BartForConditionalGeneration(config).eval(), tokenizer


class BartScorer:
    """Mean target-token log-probability under a BART, per (source, target) pair, in batches;
    the model loads on the first call."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 8):
        self.model_name = model
        self.batch_size = batch_size
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self.model_name == TINY:
            return tiny_bart()
        import torch
        from transformers import AutoTokenizer, BartForConditionalGeneration

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = BartForConditionalGeneration.from_pretrained(self.model_name).to(device).eval()
        return model, AutoTokenizer.from_pretrained(self.model_name)

    def _ids(self, tokenizer: Any, text: str, limit: int) -> list[int]:
        """<s> text </s>, the text cut to fit the model's positions (as BARTScore truncates)."""
        body = tokenizer.encode(text, add_special_tokens=False)[: limit - 2]
        return [tokenizer.bos_token_id, *body, tokenizer.eos_token_id]

    def score(self, sources: Sequence[str], targets: Sequence[str]) -> list[float]:
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources for {len(targets)} targets")
        if self._loaded is None:
            self._loaded = self._load()
        model, tokenizer = self._loaded
        limit = model.config.max_position_embeddings
        pairs = [
            (self._ids(tokenizer, s, limit), self._ids(tokenizer, t, limit))
            for s, t in zip(sources, targets, strict=True)
        ]
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            scores += _batch_scores(model, pairs[start : start + self.batch_size])
        return scores


def _batch_scores(model: Any, pairs: Sequence[tuple[list[int], list[int]]]) -> list[float]:
    """One padded forward pass: the decoder reads </s> + target[:-1] and predicts target."""
    import torch

    config = model.config
    device = model.device
    width_in = max(len(source) for source, _ in pairs)
    width_out = max(len(target) for _, target in pairs)
    inputs = torch.full((len(pairs), width_in), config.pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(pairs), width_in), dtype=torch.long)
    labels = torch.full((len(pairs), width_out), config.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(pairs), width_out), dtype=torch.bool)
    for row, (source, target) in enumerate(pairs):
        inputs[row, : len(source)] = torch.tensor(source)
        attention[row, : len(source)] = 1
        labels[row, : len(target)] = torch.tensor(target)
        mask[row, : len(target)] = True
    decoder_inputs = torch.cat(
        [torch.full((len(pairs), 1), config.decoder_start_token_id), labels[:, :-1]], dim=1
    )
    with torch.no_grad():
        logits = model(
            input_ids=inputs.to(device),
            attention_mask=attention.to(device),
            decoder_input_ids=decoder_inputs.to(device),
        ).logits.float()
    logprobs = torch.log_softmax(logits, dim=-1).cpu()
    picked = logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1) * mask
    return (picked.sum(dim=1) / mask.sum(dim=1)).tolist()
