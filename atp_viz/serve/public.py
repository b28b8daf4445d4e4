"""A public server: what a client may name as the model, and what the page may say.

On one's own machine the model field takes any hub id or local directory. On a public
server (a Space, or any server not bound to the loopback address) a client must not pick
server paths: the field takes ``embedded``, Hugging Face ids and the directories the
operator lists, and messages shown to clients never carry a server path. The engine and
the command line keep local paths; only the app's handlers ask this module.
"""

from __future__ import annotations

import os
import re

from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..base.errors import AtpError
from ..model.loading import EMBEDDED

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_SERVER_NAME = "127.0.0.1"
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# An absolute or home-relative path of two parts or more, as it appears inside a message.
_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/[\w.@+-]+)(?:/[\w.@+~-]*)+")


def server_name() -> str:
    """The address the app binds to (``GRADIO_SERVER_NAME``, loopback by default)."""
    return os.environ.get("GRADIO_SERVER_NAME", DEFAULT_SERVER_NAME)


def public_server() -> bool:
    """``ATP_VIZ_PUBLIC`` when set (1/0); else on for a Space (``SPACE_ID``) or when the
    app listens beyond the loopback address. Any other value turns it on."""
    setting = os.environ.get("ATP_VIZ_PUBLIC", "").strip().lower()
    if setting:
        return setting not in _OFF
    return bool(os.environ.get("SPACE_ID")) or server_name() not in LOOPBACK


def operator_dirs() -> list[str]:
    """The model directories the operator offers on a public server (``ATP_VIZ_MODEL_DIRS``,
    separated like PATH)."""
    listed = os.environ.get("ATP_VIZ_MODEL_DIRS", "").split(os.pathsep)
    return [os.path.normpath(d.strip()) for d in listed if d.strip()]


def check_model(spec: str) -> str:
    """``spec`` when this server lets a client name it; refused (with one sentence that is
    the same whatever lies at that path) otherwise."""
    if not public_server() or spec == EMBEDDED:
        return spec
    if os.path.normpath(spec) in operator_dirs():
        return spec
    # transformers reads an existing relative folder before asking the hub, so a name of
    # the hub's shape is a hub id only where no such folder is in the way.
    if _hub_id(spec) and not os.path.lexists(spec):
        return spec
    offered = "".join(f", {d!r}" for d in operator_dirs())
    raise AtpError(f"this is a public server: the model must be 'embedded', a Hugging Face model id such as "
                   f"'HuggingFaceTB/SmolLM2-135M'{offered}; paths on the server are not accepted")


def _hub_id(spec: str) -> bool:
    """Whether ``spec`` has the shape of a Hugging Face repo id, by huggingface_hub's own rules:
    one or two parts, no '..' nor '--'. A part may start with '_' and an id may not end in
    '.git' (where the regex this module held answered the other way; no test nor docstring
    asks either, and the hub's answer is the one a hub id must pass)."""
    try:
        validate_repo_id(spec)
    except HFValidationError:
        return False
    return True


def scrubbed(message: str) -> str:
    """On a public server, ``message`` with every server path it holds replaced by
    '<server path>' (the directories the operator offers stay as typed)."""
    if not public_server():
        return message
    offered = operator_dirs()

    def hide(match: re.Match) -> str:
        path = match.group(0)
        kept = any(path == d or path.startswith(d.rstrip("/") + "/") for d in offered)
        return path if kept else "<server path>"

    return _PATH.sub(hide, message)
