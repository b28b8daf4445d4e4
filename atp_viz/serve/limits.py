"""What one request to the app may ask for, so that no caller can exhaust a shared server.

The engine refuses requests that make no sense (sizes below one, lengths beyond the
model's context, more evaluation windows than the text holds). These bounds are the
app's own: calibration windows are drawn with replacement, so nothing else caps how
many a caller of the API asks for, and each one is kept in memory for every block.
"""

from __future__ import annotations

import os

from ..base.errors import AtpError
from . import public

# The paper's calibration set: 128 windows of 2048 tokens.
DEFAULT_MAX_TOKENS = 128 * 2048


def max_tokens() -> int:
    """Most tokens of one calibration or evaluation set (``ATP_VIZ_MAX_TOKENS`` overrides)."""
    return int(float(os.environ.get("ATP_VIZ_MAX_TOKENS", DEFAULT_MAX_TOKENS)))


def check_tokens(samples: int, seqlen: int, what: str) -> None:
    """Refuse ``samples`` windows of ``seqlen`` tokens beyond the app's limit."""
    limit = max_tokens()
    if samples * seqlen > limit:
        raise AtpError(
            f"{what} of {samples} × {seqlen} = {samples * seqlen:,} tokens is over this app's limit of "
            f"{limit:,} tokens per set (set ATP_VIZ_MAX_TOKENS to change it)"
        )


# One text file is all a run reads; a few more let a person switch between texts.
DEFAULT_UPLOADS_PER_CLIENT = 4
DEFAULT_MAX_UPLOADS_MB = 256


def uploads_per_client() -> int:
    """Uploaded files kept per client, newest first (``ATP_VIZ_UPLOADS_PER_CLIENT``)."""
    return max(1, int(os.environ.get("ATP_VIZ_UPLOADS_PER_CLIENT", DEFAULT_UPLOADS_PER_CLIENT)))


def max_upload_bytes() -> int:
    """Uploaded files kept in all, oldest deleted first (``ATP_VIZ_MAX_UPLOADS_MB``)."""
    return int(float(os.environ.get("ATP_VIZ_MAX_UPLOADS_MB", DEFAULT_MAX_UPLOADS_MB)) * 2**20)


# A prompt to continue: a few paragraphs. Its tokens are fed to three models, and a class's
# shared server must not spend minutes on one person's essay.
DEFAULT_MAX_PROMPT_CHARS = 2000


def check_prompt_length(prompt: str) -> None:
    """On a public server, refuse a prompt over ``ATP_VIZ_MAX_PROMPT_CHARS`` characters."""
    limit = int(float(os.environ.get("ATP_VIZ_MAX_PROMPT_CHARS", DEFAULT_MAX_PROMPT_CHARS)))
    if public.public_server() and len(prompt) > limit:
        raise AtpError(f"the prompt has {len(prompt):,} characters, over this public server's limit of {limit:,} "
                       "(set ATP_VIZ_MAX_PROMPT_CHARS to change it)")
