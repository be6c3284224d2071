"""Policy: the versioned data the rules read — agencies, signers, agreements, the statute catalog,
disclosable items, placeholders and thresholds. Each version has effective dates; a batch is judged
under the version in force when it was submitted. Shipped versions live beside this file as TOML.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from taxgate.normalize.statute import Citation, parse_citation
from taxgate.normalize.text import fold, split_list

POLICY_DIR = Path(__file__).parent


class PolicyError(ValueError):
    """A policy file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Period:
    effective_from: date
    effective_to: date | None

    def covers(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


@dataclass(frozen=True)
class Signer:
    name: str
    title: str
    period: Period


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    safeguards_deficient: bool
    signers: tuple[Signer, ...]


@dataclass(frozen=True)
class Agreement:
    agency: str
    name: str
    period: Period
    removal_order_required_for: tuple[Citation, ...]


@dataclass(frozen=True)
class Statute:
    citation: Citation
    kind: str  # criminal | civil | tax_administration
    title: str


@dataclass(frozen=True)
class Thresholds:
    tax_year_min: int
    relevance_min_chars: int
    relevance_max_repeats: int
    official_max_cases: int
    max_field_chars: int


@dataclass(frozen=True)
class Identification:
    """Rules 1, 2 and 5 of positive identification, in match-weight space."""

    threshold: float
    review: float
    margin: float
    nicknames: dict[str, str]


@dataclass(frozen=True)
class Remediation:
    """Deadlines once disclosures are found unlawful (`taxgate incidents`)."""

    taxpayer_notice_days: int = 30  # § 7431(e): notify the taxpayer "as soon as practicable"
    disposal_request_days: int = 5  # ask the recipient to dispose of what it should not have received


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    period: Period
    thresholds: Thresholds
    identification: Identification
    disclosable_items: frozenset[str]
    return_information_items: frozenset[str]
    item_aliases: dict[str, str]
    address_placeholders: frozenset[str]
    name_placeholders: frozenset[str]
    agencies: dict[str, Agency]
    agreements: tuple[Agreement, ...]
    statutes: tuple[Statute, ...]
    remediation: Remediation = Remediation()
    source: Path | None = field(default=None, compare=False)
    _kinds: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def statute_for(self, citation: Citation) -> Statute | None:
        """The most specific catalog entry that this citation names or falls within."""
        matches = [s for s in self.statutes if citation.within(s.citation)]
        return max(matches, key=lambda s: len(s.citation.subsections), default=None)

    def statute_kinds(self, statute_field: str) -> tuple[str, ...]:
        """The kind of each `;`-separated citation: criminal, civil, tax_administration or unknown.
        Any title-26 provision is tax administration (§ 6103(b)(4)), listed or not."""
        if statute_field not in self._kinds:
            kinds = []
            for part in split_list(statute_field):
                citation = parse_citation(part)
                statute = self.statute_for(citation) if citation is not None else None
                if citation is not None and citation.title == 26:
                    kinds.append("tax_administration")
                else:
                    kinds.append(statute.kind if statute else "unknown")
            if len(self._kinds) > 50_000:  # bounded: statute fields repeat, but a hostile batch need not
                self._kinds.clear()
            self._kinds[statute_field] = tuple(kinds)
        return self._kinds[statute_field]

    def agreement_for(self, agency: str, day: date) -> Agreement | None:
        return next((a for a in self.agreements if a.agency == agency and a.period.covers(day)), None)

    def canonical_item(self, item: str) -> str:
        key = fold(item).replace(" ", "_")
        return self.item_aliases.get(key, key)


def _period(table: dict, where: str) -> Period:
    try:
        start = table["effective_from"]
    except KeyError:
        raise PolicyError(f"{where}: effective_from is required") from None
    end = table.get("effective_to")
    if not isinstance(start, date) or (end is not None and not isinstance(end, date)):
        raise PolicyError(f"{where}: effective dates must be TOML dates (YYYY-MM-DD)")
    return Period(start, end)


def _citation(text: str, where: str) -> Citation:
    citation = parse_citation(text)
    if citation is None:
        raise PolicyError(f"{where}: {text!r} is not a statute citation")
    return citation


def _identification(table: dict) -> Identification:
    values = Identification(
        threshold=float(table["threshold"]),
        review=float(table["review"]),
        margin=float(table["margin"]),
        nicknames={fold(k): fold(v) for k, v in table.get("nicknames", {}).items()},
    )
    if not values.review <= values.threshold or values.margin <= 0:
        raise PolicyError("identification: need review <= threshold and margin > 0")
    return values


def load_policy(path: Path) -> Policy:
    """Read one policy version from a TOML file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy {path} is not valid TOML: {exc}") from None
    try:
        meta, limits, items = raw["policy"], raw["thresholds"], raw["items"]
        agencies = {
            a["code"]: Agency(
                code=a["code"],
                name=a.get("name", a["code"]),
                safeguards_deficient=bool(a.get("safeguards_deficient", False)),
                signers=tuple(
                    Signer(s["name"], s["title"], _period(s, f"signer {s['name']}")) for s in a.get("signers", [])
                ),
            )
            for a in raw.get("agencies", [])
        }
        agreements = tuple(
            Agreement(
                agency=a["agency"],
                name=a.get("name", ""),
                period=_period(a, f"agreement with {a['agency']}"),
                removal_order_required_for=tuple(
                    _citation(c, "agreement") for c in a.get("removal_order_required_for", [])
                ),
            )
            for a in raw.get("agreements", [])
        )
        statutes = tuple(
            Statute(_citation(s["citation"], "statute catalog"), s["kind"], s.get("title", ""))
            for s in raw.get("statutes", [])
        )
        placeholders = raw.get("placeholders", {})
        policy = Policy(
            name=meta["name"],
            version=meta["version"],
            period=_period(meta, "policy"),
            thresholds=Thresholds(**limits),
            identification=_identification(raw.get("identification", {})),
            disclosable_items=frozenset(items["disclosable"]),
            return_information_items=frozenset(items.get("return_information", [])),
            item_aliases=dict(items.get("aliases", {})),
            address_placeholders=frozenset(fold(p) for p in placeholders.get("phrases", [])),
            name_placeholders=frozenset(fold(p) for p in placeholders.get("name_phrases", [])),
            agencies=agencies,
            agreements=agreements,
            statutes=statutes,
            remediation=Remediation(**raw.get("remediation", {})),
            source=path,
        )
    except KeyError as exc:
        raise PolicyError(f"policy {path}: missing key {exc.args[0]!r}") from None
    except TypeError as exc:
        raise PolicyError(f"policy {path}: {exc}") from None
    bad = {s.kind for s in statutes} - {"criminal", "civil", "tax_administration"}
    if bad:
        raise PolicyError(f"policy {path}: unknown statute kind(s) {sorted(bad)}")
    return policy


def policy_in_force(versions: list[Policy], day: date) -> Policy:
    """The version whose effective period covers `day`; the latest-starting one if several do."""
    covering = [p for p in versions if p.period.covers(day)]
    if not covering:
        raise PolicyError(f"no policy version is in force on {day.isoformat()}")
    return max(covering, key=lambda p: p.period.effective_from)


def load_policies(path: Path | None = None) -> list[Policy]:
    """Every version in a policy file or folder; the shipped demo policy when no path is given."""
    path = path or POLICY_DIR
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files:
        raise PolicyError(f"no policy files (*.toml) in {path}")
    return [load_policy(f) for f in files]
