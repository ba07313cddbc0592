"""Load a base model and its tokenizer from a reference: built-in, local path or hub id."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from mor.base.builtin import build_builtin, builtin_names
from mor.data.schema import DEFAULT_ROLES

__all__ = ["BaseRef", "parse_base_ref", "load_base"]

_FORMS = ("builtin", "path", "hub")


@dataclass(frozen=True)
class BaseRef:
    """Which base model: `kind` is builtin, path or hub; `value` its name, directory or hub id."""

    kind: Literal["builtin", "path", "hub"]
    value: str
    revision: str | None = None

    def describe(self) -> str:
        """Human-readable form, e.g. `hub:meta-llama/Llama-3.2-1B-Instruct`."""
        return f"{self.kind}:{self.value}" + (f"@{self.revision}" if self.revision else "")


def parse_base_ref(spec_like: Any) -> BaseRef:
    """Read a base-model reference from a spec section (`{builtin: ...}` / `{path: ...}` / `{hub: ...}` as a mapping
    or an object with those attributes), a `BaseRef`, or a string (a built-in name, an existing directory, or a
    hub id)."""
    if isinstance(spec_like, BaseRef):
        return spec_like
    if isinstance(spec_like, (str, os.PathLike)):
        text = os.fspath(spec_like)
        if text in builtin_names():
            return BaseRef("builtin", text)
        if Path(text).expanduser().exists() or text.startswith((".", "/", "~")):
            return BaseRef("path", str(Path(text).expanduser()))
        return BaseRef("hub", text)
    if isinstance(spec_like, Mapping):
        fields = {key: spec_like.get(key) for key in (*_FORMS, "revision")}
    else:
        fields = {key: getattr(spec_like, key, None) for key in (*_FORMS, "revision")}
    given = [form for form in _FORMS if fields[form] is not None]
    if len(given) != 1:
        raise ValueError(
            f"base_model: got {spec_like!r}; give exactly one of builtin, path or hub, e.g. {{builtin: tiny-llama}}"
        )
    kind = given[0]
    revision = fields["revision"]
    return BaseRef(kind, os.fspath(fields[kind]), str(revision) if revision else None)  # type: ignore[arg-type]


def _tokenizer(source: str, **kwargs: Any) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(source, **{k: v for k, v in kwargs.items() if k != "dtype"})
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # no new token: the embeddings of a frozen base stay as they are
    return tokenizer


def _pretrained(source: str, **kwargs: Any) -> tuple[PreTrainedModel, Any]:
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    return model.eval(), _tokenizer(source, **kwargs)


def load_tokenizer(
    spec_like: Any,
    *,
    cache_dir: str | Path | None = None,
    texts: Iterable[str] | None = None,
    roles: Sequence[str] = DEFAULT_ROLES,
    local_files_only: bool | None = None,
) -> Any:
    """The tokenizer `load_base` would give, without loading a path's or a hub model's weights (a built-in base is
    built, as its tokenizer is trained with it)."""
    ref = parse_base_ref(spec_like)
    if ref.kind == "builtin":
        return load_base(spec_like, cache_dir=cache_dir, texts=texts, roles=roles)[1]
    return _from_source(ref, _tokenizer, local_files_only, {})


def load_base(
    spec_like: Any,
    *,
    cache_dir: str | Path | None = None,
    texts: Iterable[str] | None = None,
    roles: Sequence[str] = DEFAULT_ROLES,
    local_files_only: bool | None = None,
    dtype: Any = None,
) -> tuple[PreTrainedModel, Any]:
    """The base model (in eval mode) and its tokenizer.

    builtin: built from the packaged config with a tokenizer trained on `texts` (the rendered training
    trajectories), cached under `cache_dir`. path: `from_pretrained` on the directory. hub: `from_pretrained` on the
    id, from the local Hugging Face cache first; it downloads only when `local_files_only` is False (default: honour
    HF_HUB_OFFLINE). With a third-party tokenizer the role markers stay plain text.
    """
    ref = parse_base_ref(spec_like)
    extra: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
    if ref.kind == "builtin":
        if cache_dir is None:
            raise ValueError("load_base: a built-in base needs cache_dir (e.g. settings.cache_dir) to keep its files")
        return build_builtin(ref.value, texts=texts or [], roles=roles, cache_dir=cache_dir)
    return _from_source(ref, _pretrained, local_files_only, extra)


def _from_source(ref: BaseRef, load: Callable[..., Any], local_files_only: bool | None, extra: dict[str, Any]) -> Any:
    """`load(source, **kwargs)` on a path base's directory, or on a hub id from the local cache first (downloading
    only when `local_files_only` is False; default: honour HF_HUB_OFFLINE)."""
    if ref.kind == "path":
        path = Path(ref.value).expanduser()
        if not (path / "config.json").is_file():
            problem = "does not exist" if not path.exists() else "has no config.json"
            raise FileNotFoundError(
                f"base_model.path: {str(path)!r} {problem}; give a directory written by save_pretrained "
                "(config.json, weights, tokenizer files)"
            )
        return load(str(path), **extra)
    offline = local_files_only
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    kwargs = {**extra, **({"revision": ref.revision} if ref.revision else {})}
    try:
        return load(ref.value, local_files_only=True, **kwargs)
    except OSError as error:
        if offline:
            raise FileNotFoundError(
                f"base_model.hub: {ref.value!r} is not in the local Hugging Face cache and downloads are off; run "
                f"`huggingface-cli download {ref.value}` on a connected machine or give a local path ({error})"
            ) from error
    return load(ref.value, **kwargs)
