"""The verdict on one image, as typed Python objects.

Parsed from the library's verdict JSON (schema ``imgjudge.verdict/2``,
docs/verdict-json.md); :meth:`Verdict.to_dict` and :attr:`Verdict.json` give
that JSON whole, including fields added after this package was written.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

SCHEMA = "imgjudge.verdict/2"

#: The three decisions. "review": no rule is violated but one stayed uncertain
#: under ``uncertain = "review"``: route the image to a person.
DECISIONS = ("safe", "unsafe", "review")


@dataclass(frozen=True)
class Region:
    """What strategy 2 located for a statement, and the score without it (or on its crop)."""

    phrase: str
    box: Tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    confidence: float
    area_fraction: float
    action: str  # "erase" or "crop"
    score: Optional[float]


@dataclass(frozen=True)
class Statement:
    """One precondition statement of an item and its evidence."""

    statement: str
    score: Optional[float]  # M(x, c); None when not evaluated
    prior: Optional[float]  # m0, the language prior
    region_score: Optional[float]
    crop_score: Optional[float]
    region: Optional[Region]
    outcome: str  # accepted | rejected | uncertain | not_evaluated
    decided_by: str  # none | prior | direct | region | reasoning | undecided
    rationale: Optional[str]


@dataclass(frozen=True)
class Item:
    """One item (link) of a rule's precondition chain."""

    outcome: str
    decided_by: str
    deciding_statement: Optional[int]
    statements: Tuple[Statement, ...]


@dataclass(frozen=True)
class Rule:
    """The result of one rule of the constitution."""

    id: str
    category: str
    severity: str
    relevance: Optional[float]  # best cosine; None when relevance scanning is off
    judged: bool  # False: skipped by relevance scanning
    violated: bool
    uncertain: bool
    review: bool
    score: float  # violation score in [0, 1]
    items: Tuple[Item, ...]


@dataclass(frozen=True)
class ImageInfo:
    hash: str  # "sha256:<hex>" of the decoded pixels
    width: int
    height: int


@dataclass(frozen=True)
class ConstitutionInfo:
    name: str
    version: str
    hash: str


class Verdict:
    """The verdict on one image.

    ``decision`` is ``"unsafe"`` if any rule is violated, else ``"review"`` if a
    rule needs review, else ``"safe"``. Test ``verdict.unsafe`` (or the decision),
    never the absence of an exception alone: a "review" image is not safe.
    """

    __slots__ = ("_json", "decision", "violated", "review_rules", "category_scores", "image",
                 "constitution", "models", "rules", "stats", "timings_ms", "notes", "animation")

    def __init__(self, verdict_json: str) -> None:
        data = _json.loads(verdict_json)
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ValueError("verdict JSON of schema %r, but this package reads %r" % (schema, SCHEMA))
        self._json = verdict_json
        self.decision: str = data["decision"]
        if self.decision not in DECISIONS:
            raise ValueError("verdict JSON: unknown decision %r" % self.decision)
        self.violated: Tuple[str, ...] = tuple(data["violated_rules"])
        self.review_rules: Tuple[str, ...] = tuple(data.get("review_rules", ()))
        self.category_scores: Mapping[str, float] = MappingProxyType(dict(data.get("category_scores", {})))
        image = data["image"]
        self.image = ImageInfo(image["hash"], int(image["width"]), int(image["height"]))
        constitution = data["constitution"]
        self.constitution = ConstitutionInfo(constitution["name"], constitution["version"], constitution["hash"])
        self.models: Mapping[str, Any] = MappingProxyType(dict(data.get("models", {})))
        self.rules: Tuple[Rule, ...] = tuple(_rule(rule) for rule in data["rules"])
        self.stats: Mapping[str, Any] = MappingProxyType(dict(data.get("stats", {})))
        self.timings_ms: Mapping[str, float] = MappingProxyType(dict(data.get("timings_ms", {})))
        self.notes: Tuple[str, ...] = tuple(data.get("notes", ()))
        animation = data.get("animation")
        self.animation: Optional[Mapping[str, Any]] = None if animation is None else MappingProxyType(animation)

    @property
    def unsafe(self) -> bool:
        """True if at least one rule is violated."""
        return self.decision == "unsafe"

    @property
    def safe(self) -> bool:
        """True only if no rule is violated and none needs review."""
        return self.decision == "safe"

    @property
    def needs_review(self) -> bool:
        """True if no rule is violated but one needs a person's review."""
        return self.decision == "review"

    @property
    def json(self) -> str:
        """The verdict as the library wrote it: one line of JSON."""
        return self._json

    def to_dict(self) -> Dict[str, Any]:
        """The verdict JSON as a new dict (every field, also those this class does not type)."""
        return _json.loads(self._json)

    def rule(self, rule_id: str) -> Rule:
        """The result of the rule with this id (KeyError if the constitution has none)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def __eq__(self, other: object) -> bool:
        """Same decision and same per-rule results (timings, which vary run to run, are ignored)."""
        if not isinstance(other, Verdict):
            return NotImplemented
        return (self.decision, self.violated, self.review_rules, self.image, self.constitution,
                self.rules) == (other.decision, other.violated, other.review_rules, other.image,
                                other.constitution, other.rules)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container of results

    def __repr__(self) -> str:
        return "Verdict(decision=%r, violated=%r, review_rules=%r, image=%s %dx%d)" % (
            self.decision, list(self.violated), list(self.review_rules), self.image.hash[:19],
            self.image.width, self.image.height)


def _region(data: Optional[Dict[str, Any]]) -> Optional[Region]:
    if data is None:
        return None
    box = data["box"]
    return Region(data["phrase"], (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                  data["confidence"], data["area_fraction"], data["action"], data.get("score"))


def _statement(data: Dict[str, Any]) -> Statement:
    return Statement(data["statement"], data.get("score"), data.get("prior"), data.get("region_score"),
                     data.get("crop_score"), _region(data.get("region")), data["outcome"],
                     data["decided_by"], data.get("rationale"))


def _item(data: Dict[str, Any]) -> Item:
    return Item(data["outcome"], data["decided_by"], data.get("deciding_statement"),
                tuple(_statement(statement) for statement in data["statements"]))


def _rule(data: Dict[str, Any]) -> Rule:
    return Rule(data["id"], data["category"], data["severity"], data.get("relevance"), bool(data["judged"]),
                bool(data["violated"]), bool(data.get("uncertain", False)), bool(data.get("review", False)),
                float(data.get("score", 0.0)), tuple(_item(item) for item in data["items"]))
