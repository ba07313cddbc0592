"""Numeric precision of training: the autocast context, the fp16 gradient scaler and the base model's load dtype."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

__all__ = ["Precision", "autocast", "grad_scaler", "base_load_dtype"]

Precision = Literal["fp32", "bf16", "fp16"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_BASE_DTYPES: dict[str, torch.dtype | str] = {
    "auto": "auto",
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def autocast(precision: Precision, device_type: str) -> AbstractContextManager[object]:
    """`torch.autocast` to bf16/fp16 on `device_type` ("cpu", "cuda"); nothing for fp32."""
    if precision == "fp32":
        return nullcontext()
    if precision not in _AUTOCAST_DTYPES:
        raise ValueError(f"precision: got {precision!r}, expected one of fp32, bf16, fp16")
    return torch.autocast(device_type, dtype=_AUTOCAST_DTYPES[precision])


def grad_scaler(precision: Precision, device_type: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (fp32 and bf16 have float32's exponent range and need none).

    A disabled scaler passes the loss, `unscale_` and `step` straight through, so one code path serves all three.
    """
    return torch.amp.GradScaler(device_type, enabled=precision == "fp16")


def base_load_dtype(name: str) -> torch.dtype | str:
    """The `dtype` argument of `from_pretrained` for a spec's `base_model.dtype`."""
    if name not in _BASE_DTYPES:
        raise ValueError(f"base_model.dtype: got {name!r}, expected one of {', '.join(_BASE_DTYPES)}")
    return _BASE_DTYPES[name]
