# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tokenizers for the value model: the real Gemma tokenizer (offline) or a small local one.

The local tokenizer exists so tests, the tiny preset and machines without the Gemma files run the whole code
path. It is char-level over printable ASCII with the numbers 0..255 as whole tokens (one token per state bin)
and the Gemma special-token ids (pad 0, eos 1, bos 2, unk 3). Both are ``PreTrainedTokenizerFast`` objects
that pad on the right and save/load with ``save_pretrained`` / ``AutoTokenizer``.
"""

from __future__ import annotations

import logging
import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

GEMMA_TOKENIZER_ID = "google/gemma-3-270m"
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")
# Characters other than digits; digits only appear inside number tokens.
_CHARS = sorted(set(string.printable) - set(string.digits) - set("\t\n\r\x0b\x0c"))
# Numbers 0..255 as one token each (longest match first), any other character on its own.
_SPLIT = r"25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9]|[^0-9]"
LOCAL_VOCAB_SIZE = len(SPECIAL_TOKENS) + len(_CHARS) + 256


def build_local_tokenizer() -> PreTrainedTokenizerFast:
    """Deterministic tokenizer of ``LOCAL_VOCAB_SIZE`` tokens; same ids on every machine."""
    vocab: dict[str, int] = {}
    for tok in (*SPECIAL_TOKENS, *_CHARS, *(str(i) for i in range(256))):
        vocab[tok] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        padding_side="right",
        model_max_length=1 << 20,
        model_input_names=["input_ids", "attention_mask"],
    )
    return tok


def load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a local directory or the HF cache, never from the network.

    Raises FileNotFoundError with instructions when the files are not on this machine.
    """
    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(
            f"tokenizer {str(name_or_path)!r} is not available offline (not a directory with tokenizer files "
            f"and not in the Hugging Face cache): {str(exc).rstrip('.')}. Download it on a machine with "
            f"network access (e.g. `huggingface-cli download {GEMMA_TOKENIZER_ID}`) and copy the directory "
            "here, or use build_local_tokenizer() for a model trained with the local tokenizer"
        ) from exc
    return configure_tokenizer(tok)


def configure_tokenizer(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Right padding (pooling reads the last valid token) and a pad token (Gemma's is id 0)."""
    tok.padding_side = "right"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError("tokenizer has neither a pad nor an eos token; add a pad token before use")
        logger.warning("tokenizer has no pad token; padding with eos %r", tok.eos_token)
        tok.pad_token = tok.eos_token
    return tok
