"""What the pruned model says: greedy continuations of one prompt by the dense model and a
pruned pair, and where each pruned run loses the thread, as typed records (``to_json`` is
the published format of ``generate --json`` and of a run's History JSON), with no torch:
the scoring over logits is ``generation``'s.

Each pruned run is scored *teacher-forced* on the dense continuation: fed the prompt and the
dense model's tokens, at every position its next-token distribution q is set beside the
dense model's p. Per position: q of the dense token, KL(p || q) in nats, and whether q's
top-1 is the dense token; over the continuation, the mean KL and the agreement rate (the
share of positions whose top-1 agrees). Apart from that, the first position where the pruned
run's own greedy continuation differs from the dense one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TokenScores:
    """A pruned run scored on the dense continuation, one value per dense token."""

    dense_token_prob: list[float]  # q(dense token)
    kl: list[float]  # KL(p || q), nats
    agrees: list[bool]  # argmax q == the dense token

    @property
    def mean_kl(self) -> float | None:
        return sum(self.kl) / len(self.kl) if self.kl else None

    @property
    def agreement(self) -> float | None:
        return sum(self.agrees) / len(self.agrees) if self.agrees else None

    def to_json(self) -> dict:
        return {**asdict(self), "mean_kl": self.mean_kl, "agreement": self.agreement}

    @classmethod
    def from_json(cls, data: dict) -> "TokenScores":
        return cls(list(data["dense_token_prob"]), list(data["kl"]), list(data["agrees"]))


def first_divergence(dense_tokens: list[int], pruned_tokens: list[int]) -> int | None:
    """The first position where the pruned continuation differs from the dense one (one that
    ends sooner or later differs where the shorter ends); None where they are the same."""
    for position, (dense, pruned) in enumerate(zip(dense_tokens, pruned_tokens)):
        if dense != pruned:
            return position
    if len(dense_tokens) != len(pruned_tokens):
        return min(len(dense_tokens), len(pruned_tokens))
    return None


@dataclass
class Continuation:
    """One model's greedy continuation: its new token ids, each token as text, the whole text;
    for a pruned run, its scores on the dense continuation and where its own first differs."""

    model: str  # "dense", "uniform", or the other run's allocation ("atp", "owl", ...)
    label: str  # as the page names it ("ATP β = 0.012")
    token_ids: list[int]
    tokens: list[str]
    text: str
    scores: TokenScores | None = None
    first_divergence: int | None = None

    def to_json(self) -> dict:
        data = {"model": self.model, "label": self.label, "token_ids": self.token_ids, "tokens": self.tokens,
                "text": self.text}
        if self.scores is not None:
            data.update(scores=self.scores.to_json(), first_divergence=self.first_divergence)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Continuation":
        scores = data.get("scores")
        return cls(data["model"], data["label"], list(data["token_ids"]), list(data["tokens"]), data["text"],
                   None if scores is None else TokenScores.from_json(scores), data.get("first_divergence"))


@dataclass
class Generation:
    """The prompt as the models saw it and each model's continuation (dense first)."""

    prompt: str
    chat_template: bool
    prompt_ids: list[int]
    max_new_tokens: int
    continuations: list[Continuation] = field(default_factory=list)
    seconds: float | None = None  # the generation and scoring, without any pruning

    @property
    def dense(self) -> Continuation:
        return self.continuations[0]

    @property
    def pruned(self) -> list[Continuation]:
        return self.continuations[1:]

    def to_json(self) -> dict:
        return {"prompt": self.prompt, "chat_template": self.chat_template, "prompt_ids": self.prompt_ids,
                "max_new_tokens": self.max_new_tokens, "greedy": True,
                "continuations": {c.model: c.to_json() for c in self.continuations}, "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: dict) -> "Generation":
        return cls(data["prompt"], bool(data["chat_template"]), list(data["prompt_ids"]), int(data["max_new_tokens"]),
                   [Continuation.from_json(c) for c in data["continuations"].values()], data.get("seconds"))
