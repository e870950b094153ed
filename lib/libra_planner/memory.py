"""Per-instance GPU memory accounting, the way vLLM's V1 engine does it.

What vLLM does at startup (``vllm/v1/worker/gpu_worker.py``; what changes by release is data,
``catalog/engine.yml``, read in each release's source):

1. ``init_device`` creates the CUDA context, takes a memory snapshot and refuses to start when
   the free memory is below ``gpu_memory_utilization x total`` ("Free memory on device ... is
   less than desired GPU memory utilization"). The budget is per process; the context sits
   outside it.
2. ``load_model`` measures the weights (``Model loading took X GiB``): torch-allocated bytes,
   so each tensor counts at the size PyTorch's caching allocator hands out.
3. ``determine_available_memory`` runs one profile forward pass at ``max_num_batched_tokens``
   tokens followed by a dummy sampler run over ``min(max_num_seqs, max_num_batched_tokens)``
   rows, and sets  KV memory = utilization x total - weights - peak activation - non-torch
   memory. The sampler run depends on the model runner (the V1 runner samples with top-k/top-p,
   Model Runner V2 greedily); with a cold torch.compile cache the profile also compiles, and
   that peak (``cold_compile_gib``) comes out of the KV cache too.
4. The KV cache is cut into blocks of ``block_size`` tokens; vLLM refuses to start when one
   ``max_model_len`` request does not fit ("... larger than the maximum number of tokens that
   can be stored in KV cache").
5. CUDA graphs are captured after the KV cache exists: their profiled estimate comes out of the
   budget from 0.20 on the V1 runner and from 0.29 on Model Runner V2
   (``cuda_graphs_in_budget``, ``cuda_graphs_in_budget_v2``), before that they sit outside it.

All arithmetic is in integer bytes; GiB figures are rounded only for display.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import PlannerError
from .engine import release_facts, serving_defaults
from .models import resolve_model_config

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
_DTYPE_ALIASES = {
    "half": "float16",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float": "float32",
    "float32": "float32",
}
_KV_DTYPE_BYTES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}

# PyTorch CUDACachingAllocator (c10/cuda/CUDACachingAllocator.cpp): requests are rounded to
# 512 B; requests of 10 MiB and more get their own segment rounded up to 2 MiB, and the tail
# of a block is split off only when it is larger than 1 MiB (kSmallSize), so a tail of at most
# 1 MiB stays inside the allocated block and counts as allocated.
_ALLOC_MIN_BLOCK = 512
_ALLOC_MIN_LARGE = 10 * MIB
_ALLOC_ROUND_LARGE = 2 * MIB
_ALLOC_SMALL_SIZE = 1 * MIB

# vLLM pads embedding rows to a multiple of 64 (DEFAULT_VOCAB_PADDING_SIZE,
# vllm/model_executor/layers/vocab_parallel_embedding.py).
_VOCAB_PADDING = 64

# Bytes per (row x vocab) element that the profile's dummy sampler run keeps alive at its peak,
# beyond the model-dtype logits the caller holds. Per release in catalog/engine.yml
# (`profile_sampler_bytes`), with these defaults:
# V1 model runner, native sampler (v1/worker/gpu_model_runner.py _dummy_sampler_run sets
#   temperature 0.5, top_p 0.9, top_k vocab-1, so top-k/top-p run): up to 0.16 the sort-based
#   apply_top_k_top_p (v1/sample/ops/topk_topp_sampler.py): fp32 copy 4, sorted values 4, sort
#   indices int64 8, top-k mask 1, softmax/cumsum 4, top-p mask 1, scattered result 4 = 26;
#   from 0.17 an in-place Triton top-k/top-p kernel: fp32 copy 4, probabilities 4, noise 4 = 12.
# FlashInfer (V1 forward_cuda, top_k_top_p_sampling_from_logits): fp32 copy 4, top-k masked
#   logits 4, probabilities 4 = 12. From 0.21 the dummy run samples a second time with a seeded
#   generator, which takes the native path whatever the sampler (gpu_model_runner.py).
# V0 (vllm/model_executor/layers/sampler.py _apply_top_k_top_p): fp32 copy 4, sorted 4,
#   indices 8, top-k mask 1, softmax 4, cumsum 4, top-p mask 1, inverse indices 8, gathered
#   result 4 = 38.
# Model Runner V2 (v1/worker/gpu/model_runner.py _dummy_sampler_run): the dummy requests keep
#   the default sampling state (greedy, no top-k/top-p), so only the gumbel kernel runs; an fp32
#   copy 4 up to 0.25, none from 0.26 (sample/sampler.py apply_sampling_params skips it when no
#   request needs logits processing).
_SAMPLER_BYTES_PER_ELEMENT = {"v1": 26, "v0": 38}
_FLASHINFER_SAMPLER_BYTES_PER_ELEMENT = 12
_SAMPLERS = ("native", "flashinfer")
_MODEL_RUNNERS = ("v1", "v2")
# Whether vLLM finds its torch.compile cache (~/.cache/vllm/torch_compile_cache) for this
# configuration at start. The stack's containers keep none (a new container compiles afresh),
# so a deploy is a cold start.
_COMPILE_CACHES = ("cold", "warm")

# AWQ dequantizes the whole weight to fp16 and runs a dense matmul when a batch has >= 256
# tokens (vllm/model_executor/layers/quantization/awq.py, FP16_MATMUL_HEURISTIC_CONDITION);
# the GPTQ (exllama) kernel allocates a dequantized copy of the weight per call
# (csrc/quantization/gptq/q_gemm.cu, temp_dq). Marlin kernels (compute capability >= 8.0,
# 4/8-bit only) need no such copy.
_AWQ_DENSE_MIN_TOKENS = 256

# CUDA-graph memory (outside the budget before v0.21): an empirical fit to the captures vLLM
# logged in data/vllm_startup_observations.csv rows 14, 16 (V0) and 33 (V1): a fixed 64 MiB
# plus, per layer, about five hidden-size activations per token of the largest capture size
# kept in the shared graph pool. It only sizes headroom; the KV figures do not depend on it.
_CUDA_GRAPH_FIXED_BYTES = 64 * MIB
_CUDA_GRAPH_HIDDEN_MULTIPLE = 5


def _gib(nbytes: int | float) -> float:
    return round(nbytes / GIB, 4)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def allocator_block_bytes(nbytes: int) -> int:
    """Bytes PyTorch's caching allocator accounts for one fresh tensor of ``nbytes``."""
    if nbytes <= 0:
        return 0
    rounded = _ceil_div(nbytes, _ALLOC_MIN_BLOCK) * _ALLOC_MIN_BLOCK
    if rounded < _ALLOC_MIN_LARGE:
        return rounded
    segment = _ceil_div(rounded, _ALLOC_ROUND_LARGE) * _ALLOC_ROUND_LARGE
    return segment if segment - rounded <= _ALLOC_SMALL_SIZE else rounded


# --------------------------------------------------------------------------- input checks


def _number(
    data: dict,
    field: str,
    filter_name: str,
    *,
    required: bool = True,
    integer: bool = False,
    default: Any = None,
    prefix: str = "",
) -> Any:
    """A numeric field: bools, non-numeric strings and missing required fields are refused."""
    value = data.get(field) if isinstance(data, dict) else None
    name = f"{prefix}{field}"
    if value is None:
        if required:
            raise PlannerError(filter_name, name, "missing (required)")
        return default
    if isinstance(value, bool):
        raise PlannerError(filter_name, name, f"must be a number, not a boolean (got {value!r})")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise PlannerError(
                filter_name, name, f"must be {'an integer' if integer else 'a number'} (got {value!r})"
            ) from None
    if not isinstance(value, (int, float)) or isinstance(value, float) and not math.isfinite(value):
        raise PlannerError(filter_name, name, f"must be a number (got {value!r})")
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise PlannerError(filter_name, name, f"must be a whole number (got {value!r})")
            value = int(value)
    return value


def _positive(value: int | float, field: str, filter_name: str) -> None:
    if value <= 0:
        raise PlannerError(filter_name, field, f"must be > 0 (got {value!r})")


def _bool(data: dict, field: str, filter_name: str, default: bool = False) -> bool:
    value = data.get(field, default)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
        return value.strip().lower() in ("true", "yes")
    raise PlannerError(filter_name, field, f"must be true or false (got {value!r})")


def parse_compute_capability(value: Any, filter_name: str) -> tuple[int, int]:
    """``"7.5"`` -> ``(7, 5)``."""
    if isinstance(value, bool) or value is None:
        raise PlannerError(filter_name, "compute_capability", f"must be a string such as \"7.5\" (got {value!r})")
    text = str(value).strip()
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise PlannerError(filter_name, "compute_capability", f"must look like \"7.5\" (got {value!r})")
    return int(parts[0]), int(parts[1])


def gpu_memory(gpu: dict, filter_name: str) -> dict:
    """Validated GPU figures in bytes: ``total``, ``free`` (None when unknown), ``cc``."""
    if not isinstance(gpu, dict):
        raise PlannerError(filter_name, "gpu", f"must be a mapping (got {type(gpu).__name__})")
    total_mib = _number(gpu, "memory_total_mib", filter_name, prefix="gpu.")
    _positive(total_mib, "gpu.memory_total_mib", filter_name)
    total = int(round(total_mib * MIB))
    free_mib = _number(gpu, "memory_free_mib", filter_name, required=False, prefix="gpu.")
    used_mib = _number(gpu, "memory_used_mib", filter_name, required=False, prefix="gpu.")
    free: int | None = None
    if free_mib is not None:
        if free_mib < 0:
            raise PlannerError(filter_name, "gpu.memory_free_mib", f"must be >= 0 (got {free_mib!r})")
        free = min(int(round(free_mib * MIB)), total)
    elif used_mib is not None:
        if used_mib < 0:
            raise PlannerError(filter_name, "gpu.memory_used_mib", f"must be >= 0 (got {used_mib!r})")
        free = max(total - int(round(used_mib * MIB)), 0)
    cc = parse_compute_capability(gpu.get("compute_capability"), filter_name)
    return {"total": total, "free": free, "cc": cc}


# --------------------------------------------------------------------------- dtype


def choose_dtype(compute_capability: str, requested: str | None, model_dtype: str, filter_name: str) -> str:
    """The activation/weight dtype vLLM will run with.

    ``auto`` (vLLM's default) keeps bfloat16 for a bfloat16 model on compute capability >= 8.0
    and otherwise uses float16; bfloat16 needs compute capability >= 8.0 (vLLM refuses it
    below: "Bfloat16 is only supported on GPUs with compute capability of at least 8.0").
    """
    major, minor = parse_compute_capability(compute_capability, filter_name)
    has_bf16 = (major, minor) >= (8, 0)
    req = "auto" if requested is None else str(requested).strip().lower()
    if req == "auto":
        model = _DTYPE_ALIASES.get(str(model_dtype).replace("torch.", "").lower(), "float16")
        return "bfloat16" if model == "bfloat16" and has_bf16 else "float16"
    if req not in _DTYPE_ALIASES:
        raise PlannerError(
            filter_name, "dtype", f"must be one of auto, float16, bfloat16, float32 (got {requested!r})"
        )
    dtype = _DTYPE_ALIASES[req]
    if dtype == "bfloat16" and not has_bf16:
        raise PlannerError(
            filter_name,
            "dtype",
            f"bfloat16 needs compute capability >= 8.0 but this GPU has {major}.{minor}: "
            "use dtype float16 (or auto)",
        )
    return dtype


# --------------------------------------------------------------------------- weights


def _linear_tensor_bytes(in_f: int, out_f: int, quant: dict | None, bias: bool, dtype_bytes: int) -> list[int]:
    """Byte sizes of the parameter tensors vLLM allocates for one linear layer."""
    tensors: list[int] = []
    method = quant["method"] if quant else None
    if quant is None:
        tensors.append(in_f * out_f * dtype_bytes)
    elif method in ("gptq", "awq") or (method == "compressed-tensors" and quant["bits"] == 4):
        bits = quant["bits"]
        group = quant["group_size"] if quant["group_size"] > 0 else in_f
        groups = _ceil_div(in_f, group)
        # int32 words hold 32 // bits values (GPTQ and compressed-tensors pack along the input,
        # AWQ along the output); Marlin repacks in place to the same number of bytes.
        pack = 32 // bits
        if method == "awq":
            tensors.append(in_f * _ceil_div(out_f, pack) * 4)  # qweight
        else:
            tensors.append(_ceil_div(in_f, pack) * out_f * 4)  # qweight / weight_packed
        if method != "compressed-tensors" or not quant["sym"]:
            tensors.append(groups * _ceil_div(out_f, pack) * 4)  # qzeros / weight_zero_point
        tensors.append(groups * out_f * dtype_bytes)  # scales
        if method == "gptq" and quant["desc_act"]:
            # g_idx (int32 per input row): replaced by an empty tensor after loading unless the
            # checkpoint uses act-order (desc_act)
            tensors.append(in_f * 4)
    elif method in ("fp8", "compressed-tensors"):
        # one byte per weight (FP8 e4m3 or INT8) plus float32 scales: per tensor, per output
        # channel, per group, or per [128, 128] block (vllm .../quantization/fp8.py,
        # compressed_tensors schemes W8A8Fp8 / W8A8Int8 / W8A16Fp8)
        tensors.append(in_f * out_f)
        scale = quant.get("weight_scale") or "tensor"
        if scale == "block" and quant.get("block"):
            bn, bk = quant["block"][0], quant["block"][1]
            tensors.append(_ceil_div(out_f, bn) * _ceil_div(in_f, bk) * 4)
        elif scale == "channel":
            tensors.append(out_f * 4)
        elif scale == "group" and quant["group_size"] > 0:
            tensors.append(_ceil_div(in_f, quant["group_size"]) * out_f * dtype_bytes)
        else:
            tensors.append(3 * 4)  # one scale per merged shard (q, k, v at most)
        if quant.get("act_static"):
            tensors.append(4)  # static input scale (activation_scheme static)
    else:  # bitsandbytes (vllm .../quantization/bitsandbytes.py: uint8 packed weight + quant state)
        n = in_f * out_f
        if quant["bits"] == 8:
            tensors.append(n)  # int8 weight
            tensors.append(out_f * 4)  # per-row absmax (SCB, float32)
        else:
            block = quant["group_size"] if quant["group_size"] > 0 else 64
            tensors.append(_ceil_div(n, 2))  # two 4-bit values per byte
            blocks = _ceil_div(n, block)
            if quant["double_quant"]:
                tensors.append(blocks)  # uint8 absmax, itself quantized
                tensors.append(_ceil_div(blocks, 256) * 4 + 256 * 4)  # nested absmax + code
            else:
                tensors.append(blocks * 4)  # float32 absmax per block
    if bias:
        tensors.append(out_f * dtype_bytes)
    return tensors


def _layer_linears(arch: dict) -> list[tuple[str, int, int, bool]]:
    """(name, in_features, out_features, bias) of one decoder layer's attention and dense MLP, merged as vLLM merges them."""
    h, i = arch["hidden_size"], arch["intermediate_size"]
    q = arch["num_heads"] * arch["head_dim"]
    kv = arch["num_kv_heads"] * arch["head_dim"]
    mlp_bias = arch.get("mlp_bias", False)
    return [
        ("self_attn.qkv_proj", h, q + 2 * kv, arch["qkv_bias"]),
        ("self_attn.o_proj", q, h, False),
        ("mlp.gate_up_proj", h, 2 * i, mlp_bias),
        ("mlp.down_proj", i, h, mlp_bias),
    ]


def _quant_for(name: str, quant: dict | None) -> dict | None:
    """``quant`` unless ``modules_not_converted`` leaves this (merged) linear layer unquantized.

    Entries are module paths or names ("lm_head", "mlp.down_proj", "model.layers.3.self_attn");
    a per-layer entry is applied to every layer, which over- rather than under-counts memory.
    """
    if quant is None:
        return None
    block, short = name.split(".")
    parts = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}.get(short, (short,))
    for module in quant["modules_not_converted"]:
        tail = module.strip(".").split(".")
        if tail[-1] == block or tail[-1] in parts or tail[-1] == short:
            return None
    return quant


def _moe_bytes(arch: dict, dtype_bytes: int) -> tuple[int, int]:
    """(bytes of one sparse layer's MoE block, bytes of the dense MLP it replaces)."""
    moe = arch["moe"]
    h = arch["hidden_size"]
    quant = _quant_for("mlp.experts", arch["quantization"])
    mi = moe["intermediate_size"]
    # FusedMoE stacks the experts: w13 (E x 2mi x h) and w2 (E x h x mi) as one tensor each
    w13 = sum(_linear_tensor_bytes(h, 2 * mi, quant, False, dtype_bytes)) * moe["experts"]
    w2 = sum(_linear_tensor_bytes(mi, h, quant, False, dtype_bytes)) * moe["experts"]
    total = allocator_block_bytes(w13) + allocator_block_bytes(w2)
    total += allocator_block_bytes(h * moe["experts"] * dtype_bytes)  # router (gate), never quantized
    si = moe["shared_intermediate_size"]
    if si:
        total += sum(allocator_block_bytes(t) for t in _linear_tensor_bytes(h, 2 * si, quant, False, dtype_bytes))
        total += sum(allocator_block_bytes(t) for t in _linear_tensor_bytes(si, h, quant, False, dtype_bytes))
        if moe["shared_expert_gate"]:
            total += allocator_block_bytes(h * dtype_bytes)
    dense = 0
    for name, in_f, out_f, bias in _layer_linears(arch)[2:]:
        dense += sum(allocator_block_bytes(t) for t in _linear_tensor_bytes(in_f, out_f, _quant_for(name, arch["quantization"]), bias, dtype_bytes))
    return total, dense


def vision_bytes(arch: dict, dtype_bytes: int) -> int:
    """The vision tower's weights (vLLM loads them unquantized in the model dtype)."""
    vision = arch.get("vision")
    return allocator_block_bytes(vision["params"] * dtype_bytes) if vision else 0


def weights_bytes(arch: dict, dtype_bytes: int) -> int:
    """What vLLM logs as ``Model loading took X GiB`` (torch-allocated bytes after loading)."""
    h = arch["hidden_size"]
    quant = arch["quantization"]
    layer: list[int] = []
    for name, in_f, out_f, bias in _layer_linears(arch):
        layer.extend(_linear_tensor_bytes(in_f, out_f, _quant_for(name, quant), bias, dtype_bytes))
    layer.extend([h * dtype_bytes] * arch.get("norms_per_layer", 2))  # RMSNorms of the layer
    if arch.get("qk_norm"):
        layer.extend([arch["head_dim"] * dtype_bytes] * 2)  # per-head q_norm and k_norm
    per_layer = sum(allocator_block_bytes(t) for t in layer)
    body = arch["num_layers"] * per_layer
    if arch.get("moe"):
        sparse, dense = _moe_bytes(arch, dtype_bytes)
        body += arch["moe"]["sparse_layers"] * (sparse - dense)
    vocab = _ceil_div(arch["vocab_size"], _VOCAB_PADDING) * _VOCAB_PADDING
    embed = allocator_block_bytes(vocab * h * dtype_bytes)
    lm_head = 0 if arch["tie_word_embeddings"] else embed  # tied: one tensor serves both
    final_norm = allocator_block_bytes(h * dtype_bytes)
    # Rotary cos/sin cache: max_position_embeddings x rotary_dim in the model dtype, one per
    # model (vLLM caches get_rope instances), vllm/model_executor/layers/rotary_embedding.
    rope = allocator_block_bytes(arch["max_position_embeddings"] * arch["rotary_dim"] * dtype_bytes)
    return body + embed + lm_head + final_norm + rope + vision_bytes(arch, dtype_bytes)


def _uses_marlin(quant: dict, cc: tuple[int, int], marlin_min_cc: tuple[int, int] = (8, 0)) -> bool:
    # vLLM picks gptq_marlin / awq_marlin for 4- and 8-bit (AWQ: 4-bit) checkpoints on compute
    # capability >= marlin_min_cc (8.0 up to v0.11; 7.5 in 0.32, utils/marlin_utils.py);
    # everything else runs the exllama GPTQ or the AWQ kernel, which dequantize per call.
    if quant["method"] not in ("gptq", "awq") or cc < marlin_min_cc:
        return quant["method"] not in ("gptq", "awq")
    if quant["method"] == "awq":
        return quant["bits"] == 4
    return quant["bits"] in (4, 8)


def sampler_bytes_per_element(facts: dict, engine: str, runner: str, sampler: str) -> int:
    """Bytes per (row x vocab) element of the profile's dummy sampler run (see the table above)."""
    if engine == "v0":
        return _SAMPLER_BYTES_PER_ELEMENT["v0"]
    table = facts.get("profile_sampler_bytes") or {}
    if runner == "v2":
        return int(table.get("v2", 0))
    native = int(table.get("native", _SAMPLER_BYTES_PER_ELEMENT["v1"]))
    if sampler == "flashinfer":
        # from 0.21 the seeded second pass runs natively as well (profile_sampler_bytes.native)
        return max(int(table.get("flashinfer", _FLASHINFER_SAMPLER_BYTES_PER_ELEMENT)), native if table.get("native_pass") else 0)
    return native


def model_runner(facts: dict, arch: dict) -> str:
    """The model runner the release picks for this model by default: "v1" (gpu_model_runner.py) or
    "v2" (Model Runner V2, v1/worker/gpu/model_runner.py), from ``model_runner_v2`` in catalog/engine.yml.

    ``none``: V1 for every model; ``all``: V2 for every model; or a rule: V2 for the listed
    ``model_types`` (or every dense, non-MoE model with ``dense: true``), quantized checkpoints
    included only with ``quantized: true``.
    """
    rule = facts.get("model_runner_v2", "none")
    if rule in ("none", None):
        return "v1"
    if rule == "all":
        return "v2"
    if arch.get("quantization") is not None and not rule.get("quantized", False):
        return "v1"
    if rule.get("dense") and not arch.get("moe"):
        return "v2"
    return "v2" if arch.get("model_type") in rule.get("model_types", []) else "v1"


def activation_bytes(
    arch: dict, dtype_bytes: int, tokens: int, rows: int, cc: tuple[int, int], per_element: int,
    marlin_min_cc: tuple[int, int] = (8, 0),
) -> int:
    """Torch peak increase of the profile run: max(forward pass, dummy sampler run), the sampler
    holding ``per_element`` bytes per (row x vocab) element besides the logits."""
    h, i, vocab = arch["hidden_size"], arch["intermediate_size"], arch["vocab_size"]
    b = dtype_bytes
    quant = arch["quantization"]
    dequant_up = dequant_down = 0
    if quant is not None and not _uses_marlin(quant, cc, marlin_min_cc):
        if quant["method"] == "gptq" or tokens >= _AWQ_DENSE_MIN_TOKENS:
            if _quant_for("mlp.gate_up_proj", quant) is not None:
                dequant_up = allocator_block_bytes(h * 2 * i * b)
            if _quant_for("mlp.down_proj", quant) is not None:
                dequant_down = allocator_block_bytes(i * h * b)
    # The MLP is the widest point of a layer: while down_proj runs, the layer input, the
    # residual, the gate_up output (2i), the activation output (i) and the down output are
    # alive; while gate_up runs, input, residual, a dequantized weight copy and its output.
    forward = max(
        tokens * b * (2 * h + 2 * i) + dequant_up,
        tokens * b * (3 * h + 3 * i) + dequant_down,
    )
    sampling = rows * vocab * (b + per_element) + tokens * h * b
    return max(forward, sampling)


def kv_bytes_per_token(arch: dict, kv_dtype_bytes: int) -> int:
    """2 (K and V) x layers x kv_heads x head_dim x bytes: every layer at full attention."""
    return 2 * arch["num_layers"] * arch["num_kv_heads"] * arch["head_dim"] * kv_dtype_bytes


def kv_bytes_per_request(arch: dict, kv_dtype_bytes: int, max_model_len: int, batched: int, block: int) -> int:
    """KV bytes one ``max_model_len`` request holds, block-rounded, as vLLM's KV specs size it.

    Full-attention layers keep every token; a sliding-window layer keeps at most
    ``window - 1 + max_num_batched_tokens`` tokens (SlidingWindowSpec.max_memory_usage_bytes,
    vllm/v1/kv_cache_interface.py), never more than the request.
    """
    per_layer = 2 * arch["num_kv_heads"] * arch["head_dim"] * kv_dtype_bytes
    total = 0
    for window in arch.get("layer_windows") or [None] * arch["num_layers"]:
        tokens = max_model_len if window is None else min(window - 1 + batched, max_model_len)
        total += _ceil_div(tokens, block) * block * per_layer
    return total


def cuda_graph_bytes(arch: dict, dtype_bytes: int, max_num_seqs: int, engine_facts: dict, enforce_eager: bool) -> int:
    if enforce_eager:
        return 0
    capture = min(2 * max_num_seqs, int(engine_facts.get("cuda_graph_max_capture_size", 512)))
    return _CUDA_GRAPH_FIXED_BYTES + capture * arch["num_layers"] * _CUDA_GRAPH_HIDDEN_MULTIPLE * arch["hidden_size"] * dtype_bytes


def release_refusal(arch: dict, facts: dict, cc: tuple[int, int]) -> str | None:
    """Why this release cannot run this model on this GPU (None: it can), from the release's facts."""
    quant = arch["quantization"]
    q = facts["quantization"]
    version = facts["vllm_version"]
    if quant is None:
        return None
    method = quant["method"]
    if facts["vllm_facts_from"] != version and method in ("gptq", "bitsandbytes"):
        # a release the catalog does not list: whether it still had 2/3-bit or asymmetric GPTQ
        # and bitsandbytes (0.11.0 had them, 0.32.0 has not) is not known, so it is planned
        return None
    if method == "gptq" and quant["bits"] not in q["gptq_bits"]:
        return (f"{quant['bits']}-bit GPTQ has no kernel in vLLM {version} (GPTQ bits it runs: "
                f"{', '.join(str(b) for b in q['gptq_bits'])}): use a 4-bit GPTQ/AWQ checkpoint, or pin "
                "vllm_version 0.11.0 (the exllama kernel with 2/3-bit support)")
    if method == "gptq" and not quant["sym"] and not q["gptq_asymmetric"]:
        return f"asymmetric GPTQ (sym: false) has no kernel in vLLM {version}: use a symmetric checkpoint or AWQ"
    if method == "bitsandbytes" and not q["bitsandbytes"]:
        return (f"vLLM {version} has no bitsandbytes support (no bitsandbytes quantization config or loader in "
                "its source): pin vllm_version 0.11.0, or use an AWQ/GPTQ 4-bit checkpoint of the same model")
    if method == "fp8" and not q["fp8"] or method == "compressed-tensors" and not q["compressed_tensors"]:
        return f"vLLM {version} does not run {method} checkpoints"
    if method in ("awq", "fp8") and cc < (7, 5):
        return f"{method} needs compute capability >= 7.5 in vLLM (this GPU has {cc[0]}.{cc[1]})"
    return None


def by_capability(value: Any, cc: tuple[int, int]) -> Any:
    """A per-release fact that may depend on compute capability: a plain value, or a mapping
    ``{"7.5": ..., "8.0": ...}`` whose highest key <= ``cc`` applies (None below every key)."""
    if not isinstance(value, dict):
        return value
    chosen = None
    for key, item in sorted(value.items(), key=lambda kv: tuple(int(x) for x in kv[0].split("."))):
        if cc >= tuple(int(x) for x in key.split(".")):
            chosen = item
    return chosen


def attention_backend(facts: dict, cc: tuple[int, int]) -> str:
    """The attention backend the release picks on this compute capability (catalog/engine.yml)."""
    return by_capability(facts.get("attention_backend", {}), cc) or "unknown"


def encoder_profile_bytes(arch: dict, dtype_bytes: int, batched: int) -> int:
    """Memory the multimodal encoder profile adds: the encoder cache and one image's activations.

    vLLM sizes the encoder cache to max(max_num_batched_tokens, one item's tokens) embeddings of
    the text hidden size and profiles the vision tower on one item of the maximum feature size
    (v1/worker/gpu_model_runner.py, "Encoder cache will be initialized with a budget of ...").
    """
    vision = arch.get("vision")
    if not vision:
        return 0
    cache = max(batched, vision["tokens_per_item"]) * arch["hidden_size"] * dtype_bytes
    tower = vision["patches"] * (3 * vision["hidden_size"] + 2 * vision["intermediate_size"]) * dtype_bytes
    return cache + tower


def verdict_margin_bytes(graphs_in_budget: int) -> int:
    """Margin the fits verdict holds for what varies between two starts of the same config.

    vLLM's profiled CUDA-graph estimate varies from run to run (vllm-project/vllm#53013,
    #50780), so half of the estimate is held back when it comes out of the budget. The verdict
    errs toward "does not fit" by this much.
    """
    return graphs_in_budget // 2


def cold_compile_bytes(facts: dict, enforce_eager: bool, engine: str, compile_cache: str) -> int:
    """What a cold torch.compile cache adds to the profile run's peak (0 when warm or eager).

    With a cold cache vLLM compiles inside the profile run, and from the releases that turn on
    Inductor's combo kernels with ``benchmark_combo_kernel`` (vllm/config/compilation.py, with
    torch >= 2.9) Inductor benchmarks the kernels it generates there; vLLM counts that peak as
    activation memory and takes it from the KV cache (catalog/engine.yml ``cold_compile_gib``).
    V0 and ``enforce_eager`` do not compile.
    """
    if enforce_eager or engine != "v1" or compile_cache != "cold":
        return 0
    return int(round(float(facts.get("cold_compile_gib", 0)) * GIB))


# --------------------------------------------------------------------------- the plan


def _ceil_util(nbytes: int, total: int) -> float:
    """Smallest utilization with two decimals whose budget holds ``nbytes``."""
    hundredths = _ceil_div(nbytes * 100, total)
    # int(util x total) in vLLM; stay on the safe side of float rounding
    while int(hundredths * total // 100) < nbytes:
        hundredths += 1
    return hundredths / 100


def _floor_util(nbytes: int, total: int) -> float:
    return max(nbytes * 100 // total, 0) / 100


def _settings(instance: dict, filter_name: str, total: int, facts: dict, gpu_name: str | None, model_max_len: int,
              cc: tuple[int, int] = (8, 0)) -> dict:
    util = _number(instance, "gpu_memory_utilization", filter_name, required=False,
                   default=float(facts["default_gpu_memory_utilization"]))
    if not 0 < util <= 1:
        raise PlannerError(filter_name, "gpu_memory_utilization", f"must be in (0, 1] (got {util!r})")
    # Unset: the model's own maximum, as vLLM derives it (models.derived_max_model_len).
    max_model_len = _number(instance, "max_model_len", filter_name, required=False, integer=True, default=model_max_len)
    _positive(max_model_len, "max_model_len", filter_name)
    engine = str(instance.get("engine") or facts.get("engine", "v1")).lower()
    if engine not in _SAMPLER_BYTES_PER_ELEMENT:
        raise PlannerError(filter_name, "engine", f"must be v1 or v0 (got {instance.get('engine')!r})")
    defaults = serving_defaults(facts, total, gpu_name)
    max_num_seqs = _number(instance, "max_num_seqs", filter_name, required=False, integer=True, default=defaults["max_num_seqs"])
    _positive(max_num_seqs, "max_num_seqs", filter_name)
    batched = _number(instance, "max_num_batched_tokens", filter_name, required=False, integer=True)
    if batched is None:
        if engine == "v0":
            # V0 without chunked prefill: max(max_model_len, 2048) (vllm/config.py SchedulerConfig)
            batched = max(max_model_len, 2048)
        else:
            batched = defaults["max_num_batched_tokens"]
    _positive(batched, "max_num_batched_tokens", filter_name)
    kv_dtype = str(instance.get("kv_cache_dtype") or "auto").strip().lower()
    if kv_dtype != "auto" and kv_dtype not in _KV_DTYPE_BYTES:
        raise PlannerError(
            filter_name, "kv_cache_dtype", f"must be one of auto, {', '.join(_KV_DTYPE_BYTES)} (got {instance.get('kv_cache_dtype')!r})"
        )
    sampler = str(instance.get("sampler") or by_capability(facts["sampler"], cc) or "native").strip().lower()
    if sampler not in _SAMPLERS:
        raise PlannerError(filter_name, "sampler", f"must be one of {', '.join(_SAMPLERS)} (got {instance.get('sampler')!r})")
    pinned = _number(instance, "kv_cache_memory_bytes", filter_name, required=False, integer=True)
    if pinned is not None:
        _positive(pinned, "kv_cache_memory_bytes", filter_name)
    runner = instance.get("model_runner")
    if runner is not None and str(runner).strip().lower() not in _MODEL_RUNNERS:
        raise PlannerError(filter_name, "model_runner", f"must be one of {', '.join(_MODEL_RUNNERS)} (got {runner!r})")
    compile_cache = str(instance.get("torch_compile_cache") or "cold").strip().lower()
    if compile_cache not in _COMPILE_CACHES:
        raise PlannerError(filter_name, "torch_compile_cache",
                           f"must be one of {', '.join(_COMPILE_CACHES)} (got {instance.get('torch_compile_cache')!r})")
    return {
        "kv_cache_memory_bytes": pinned,
        "torch_compile_cache": compile_cache,
        "model_runner": str(runner).strip().lower() if runner is not None else None,
        "sampler": sampler,
        "util": float(util),
        "max_model_len": int(max_model_len),
        "max_num_seqs": int(max_num_seqs),
        "max_num_batched_tokens": int(batched),
        "kv_cache_dtype": kv_dtype,
        "enforce_eager": _bool(instance, "enforce_eager", filter_name),
        "engine": engine,
    }


def plan_instance(instance: dict, gpu: dict, filter_name: str = "vllm_memory_plan") -> dict:
    """Memory plan of one vLLM instance alone on ``gpu`` (see DESIGN.md, contract 4)."""
    if not isinstance(instance, dict):
        raise PlannerError(filter_name, "instance", f"must be a mapping (got {type(instance).__name__})")
    facts = release_facts(instance.get("vllm_version"), filter_name)
    mem = gpu_memory(gpu, filter_name)
    total, free = mem["total"], mem["free"]
    arch = resolve_model_config(instance, filter_name)
    s = _settings(instance, filter_name, total, facts, gpu.get("name"), arch["derived_max_model_len"], mem["cc"])
    dtype = choose_dtype(str(gpu.get("compute_capability")), instance.get("dtype"), arch["torch_dtype"], filter_name)
    refusal = release_refusal(arch, facts, mem["cc"])
    if refusal:
        raise PlannerError(filter_name, "model", f"{arch['id']}: {refusal}")
    b = _DTYPE_BYTES[dtype]
    kv_b = _KV_DTYPE_BYTES.get(s["kv_cache_dtype"], b)
    block = int(facts.get("block_size", 16))
    marlin_cc = parse_compute_capability(facts["quantization"]["marlin_min_cc"], filter_name)

    budget = int(s["util"] * total)
    weights = weights_bytes(arch, b)
    rows = min(s["max_num_seqs"], s["max_num_batched_tokens"])
    # VLLM_USE_V2_MODEL_RUNNER overrides the release's choice (instance key model_runner)
    runner = s["model_runner"] or model_runner(facts, arch)
    per_element = sampler_bytes_per_element(facts, s["engine"], runner, s["sampler"])
    activation = activation_bytes(arch, b, s["max_num_batched_tokens"], rows, mem["cc"], per_element, marlin_cc)
    activation += encoder_profile_bytes(arch, b, s["max_num_batched_tokens"])
    non_torch = int(round(float(facts["non_torch_gib"]) * GIB))
    context = int(round(float(facts["cuda_context_gib"]) * GIB))
    graphs = cuda_graph_bytes(arch, b, s["max_num_seqs"], facts, s["enforce_eager"])
    # Model Runner V2 estimates its CUDA graphs only from 0.29 (before, profile_cudagraph_memory
    # returns 0 there): catalog/engine.yml cuda_graphs_in_budget_v2.
    graphs_inside = bool(facts.get("cuda_graphs_in_budget" if runner == "v1" or s["engine"] == "v0" else "cuda_graphs_in_budget_v2",
                                   facts.get("cuda_graphs_in_budget", False)))
    margin = verdict_margin_bytes(graphs if graphs_inside else 0)
    cold = cold_compile_bytes(facts, s["enforce_eager"], s["engine"], s["torch_compile_cache"])

    # What the profile subtracts from the budget (a cold compile's peak included)...
    non_kv = weights + activation + cold + non_torch + (graphs if graphs_inside else 0)
    # ...and what the instance holds once started: the compile's peak is gone by then.
    held_non_kv = non_kv - cold
    pinned = s["kv_cache_memory_bytes"]
    if pinned is not None and not facts["flags"].get("kv_cache_memory_bytes"):
        raise PlannerError(filter_name, "kv_cache_memory_bytes", f"vLLM {facts['vllm_version']} has no --kv-cache-memory-bytes")
    kv_bytes = pinned if pinned is not None else budget - non_kv
    per_token = kv_bytes_per_token(arch, kv_b)
    per_request = kv_bytes_per_request(arch, kv_b, s["max_model_len"], s["max_num_batched_tokens"], block)
    needed_tokens = _ceil_div(s["max_model_len"], block) * block
    # tokens the cache holds: max_model_len requests that fit, in tokens (equals blocks x block
    # for a model whose every layer attends to the full context)
    kv_tokens = (max(kv_bytes, 0) * needed_tokens // per_request) // block * block
    needed_kv = per_request
    outside = context + (0 if graphs_inside else graphs)
    # What the instance holds once started (later instances see the rest free) and its peak
    # while it starts. A cold compile's peak is over by then: a pinned KV cache is allocated
    # after the profile run (v1/worker/gpu_worker.py determine_available_memory), and an
    # unpinned one fills the budget less the compile's peak, which the profile counted.
    needs = (held_non_kv + pinned if pinned is not None else budget - cold) + outside
    peak = (max(held_non_kv + pinned, non_kv) if pinned is not None else budget) + outside
    available = free if free is not None else total
    util_min = _ceil_util(non_kv + needed_kv + margin, total)
    util_max = _floor_util(available - outside, total)

    reasons: list[str] = []
    tot_gib = _gib(total)
    model = arch["id"]
    if s["max_model_len"] > arch["derived_max_model_len"]:
        reasons.append(
            f"{model}: max_model_len {s['max_model_len']} exceeds the model's own maximum "
            f"{arch['derived_max_model_len']} (vLLM refuses it without VLLM_ALLOW_LONG_MAX_MODEL_LEN): "
            f"shorten max_model_len to <= {arch['derived_max_model_len']}"
        )
    fix_util = (
        f"raise gpu_memory_utilization to >= {util_min:.2f}"
        if util_min <= util_max
        else f"gpu_memory_utilization would have to be >= {util_min:.2f} but at most {util_max:.2f} is available"
    )
    if s["max_num_batched_tokens"] < s["max_num_seqs"]:
        reasons.append(
            f"{model}: max_num_batched_tokens ({s['max_num_batched_tokens']}) must be >= max_num_seqs "
            f"({s['max_num_seqs']}) (vLLM's scheduler config refuses it): raise max_num_batched_tokens "
            "or lower max_num_seqs"
        )
    if kv_bytes <= 0:
        reasons.append(
            f"{model}: needs {_gib(non_kv):.2f} GiB for weights ({_gib(weights):.2f}) + activations "
            f"({_gib(activation):.2f}) + non-torch ({_gib(non_torch):.2f})"
            + (f" + a cold torch.compile ({_gib(cold):.2f})" if cold else "")
            + " but the budget "
            f"{s['util']:.2f} x {tot_gib:.2f} GiB = {_gib(budget):.2f} GiB leaves nothing for the KV cache: "
            f"{fix_util}, lower max_num_batched_tokens/max_num_seqs, or pick a smaller/quantized model"
        )
    elif kv_bytes - margin < needed_kv:
        reasons.append(
            f"{model}: the KV cache holds {kv_tokens} tokens ({_gib(max(kv_bytes, 0)):.2f} GiB) but one "
            f"max_model_len request needs {s['max_model_len']} ({_gib(needed_kv):.2f} GiB)"
            + (f" plus the {_gib(margin):.2f} GiB margin held for the run-to-run CUDA-graph estimate" if margin else "")
            + f": {fix_util}, shorten max_model_len, or pick a smaller/quantized model"
        )
    if available - context < budget:
        where = f"{_gib(free):.2f} GiB free" if free is not None else f"{tot_gib:.2f} GiB total"
        startable = _floor_util(available - context, total)
        fix = (
            f"lower gpu_memory_utilization to <= {startable:.2f} or free GPU memory"
            if startable > 0
            else "free GPU memory (stop what holds it) or use a bigger GPU"
        )
        reasons.append(
            f"{model}: vLLM starts only when free memory after its CUDA context ({_gib(context):.2f} GiB) is >= "
            f"{s['util']:.2f} x {tot_gib:.2f} GiB = {_gib(budget):.2f} GiB, but the GPU has {where}: {fix}"
        )
    elif available < peak:
        reasons.append(
            f"{model}: the CUDA context ({_gib(context):.2f} GiB) and CUDA graphs ({_gib(graphs):.2f} GiB) sit outside "
            f"the {_gib(budget):.2f} GiB budget and need {_gib(peak):.2f} GiB in all, more than the "
            f"{_gib(available):.2f} GiB available: "
            + (f"lower gpu_memory_utilization to <= {util_max:.2f} or " if util_max > 0 else "")
            + "set enforce_eager: true"
        )

    return {
        "model": model,
        "vllm_version": facts["vllm_version"],
        "vllm_facts_from": facts["vllm_facts_from"],
        "attention_backend": attention_backend(facts, mem["cc"]),
        "max_model_len_source": "instance" if instance.get("max_model_len") is not None else "model (derived as vLLM does)",
        "model_max_len": arch["derived_max_model_len"],
        "kv_cache_memory_bytes": pinned,
        "verdict_margin_gib": _gib(margin),
        "cuda_graph_estimate": facts.get("cuda_graph_estimate"),
        "vision_weights_gib": _gib(vision_bytes(arch, b)),
        "quantization": arch["quantization"]["method"] if arch["quantization"] else None,
        "quantization_verified": arch["quantization"]["verified"] if arch["quantization"] else True,
        "dtype": dtype,
        "kv_cache_dtype": s["kv_cache_dtype"],
        "engine": s["engine"],
        "sampler": s["sampler"],
        "model_runner": runner if s["engine"] == "v1" else None,
        "gpu_memory_utilization": s["util"],
        "max_model_len": s["max_model_len"],
        "max_num_seqs": s["max_num_seqs"],
        "max_num_batched_tokens": s["max_num_batched_tokens"],
        "enforce_eager": s["enforce_eager"],
        "gpu_total_gib": tot_gib,
        "budget_gib": _gib(budget),
        "weights_gib": _gib(weights),
        "activation_gib": _gib(activation),
        "torch_compile_cache": s["torch_compile_cache"],
        "cold_compile_gib": _gib(cold),
        "non_torch_gib": _gib(non_torch),
        "cuda_graph_gib": _gib(graphs),
        "cuda_graphs_in_budget": graphs_inside,
        "cuda_context_gib": _gib(context),
        "kv_cache_gib": _gib(max(kv_bytes, 0)),
        "kv_bytes_per_token": per_token,
        "kv_cache_tokens": kv_tokens,
        "min_kv_tokens_needed": needed_tokens,
        "max_concurrency": round(kv_tokens / s["max_model_len"], 2),
        "needs_gib": _gib(needs),
        "start_peak_gib": _gib(peak),
        "headroom_gib": _gib(available - needs),
        "min_gpu_memory_utilization": util_min,
        "max_gpu_memory_utilization": max(util_max, 0.0),
        "fits": not reasons,
        "reasons": reasons,
        # exact integers for callers that add plans up (vllm_multi_plan)
        "budget_bytes": budget,
        "needs_bytes": needs,
        "start_peak_bytes": peak,
        "cold_compile_bytes": cold,
        "outside_budget_bytes": outside,
        "non_kv_bytes": non_kv,
        "kv_cache_bytes": kv_bytes,
        "kv_bytes_per_request": per_request,
        "verdict_margin_bytes": margin,
    }
