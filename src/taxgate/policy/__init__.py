"""Policy: the versioned data the rules read — agencies, signers, agreements, the statute catalog,
disclosable items, placeholders and thresholds. Each version has effective dates; a batch is judged
under the version in force when it was submitted. Shipped versions live beside this file as TOML.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

from nicknames import NickNamer

from taxgate.normalize.statute import Citation, parse_citation
from taxgate.normalize.text import fold, split_list
from taxgate.policy.schema import PolicyFile, ValidationError, first_error

POLICY_DIR = Path(__file__).parent


class PolicyError(ValueError):
    """A policy file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Period:
    effective_from: date
    effective_to: date | None

    def covers(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )


@dataclass(frozen=True)
class AuthorizedOfficial:
    """One who may sign an agency's requests for a period (the policy's `signers`; § 6103(i)(2)(A))."""

    name: str
    title: str
    period: Period


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    safeguards_deficient: bool
    signers: tuple[AuthorizedOfficial, ...]


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
class IdentificationRules:
    """Rules 1, 2 and 5 of positive identification, in match-weight space."""

    threshold: float
    review: float
    margin: float
    nicknames: frozenset[tuple[str, str]]  # (nickname, the name it stands for), folded


@dataclass(frozen=True)
class Remediation:
    """Deadlines once disclosures are found unlawful (`taxgate incidents`)."""

    taxpayer_notice_days: int = 30  # § 7431(e): notify the taxpayer "as soon as practicable"
    disposal_request_days: int = (
        5  # ask the recipient to dispose of what it should not have received
    )


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    period: Period
    thresholds: Thresholds
    identification: IdentificationRules
    disclosable_items: frozenset[str]
    return_information_items: frozenset[str]
    item_aliases: dict[str, str]
    address_placeholders: frozenset[str]
    name_placeholders: frozenset[str]
    agencies: dict[str, Agency]
    agreements: tuple[Agreement, ...]
    statutes: tuple[Statute, ...]
    remediation: Remediation = Remediation()
    history_window_days: int = 365  # the window of the cross-batch figures (`taxgate.history`)
    source: Path | None = field(default=None, compare=False)
    sha256: str = ""  # of the file's bytes: two files that share a version name are not one policy
    _kinds: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    _items: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def recorded(self) -> str:
        """What each batch records as its policy: the version's name and its content's digest."""
        return f"{self.version}@sha256:{self.sha256[:16]}" if self.sha256 else self.version

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
            if (
                len(self._kinds) > 50_000
            ):  # bounded: statute fields repeat, but a hostile batch need not
                self._kinds.clear()
            self._kinds[statute_field] = tuple(kinds)
        return self._kinds[statute_field]

    def agreement_for(self, agency: str, day: date) -> Agreement | None:
        return next(
            (a for a in self.agreements if a.agency == agency and a.period.covers(day)), None
        )

    def canonical_item(self, item: str) -> str:
        key = fold(item).replace(" ", "_")
        return self.item_aliases.get(key, key)

    def requested_items(self, items_field: str) -> tuple[str, ...]:
        """A request's `requested_items` field as canonical item names, repeats dropped, in order
        (memoised like `statute_kinds`: three rules ask, and the field is the same on most rows)."""
        if items_field not in self._items:
            if len(self._items) > 50_000:
                self._items.clear()
            items = (self.canonical_item(i) for i in split_list(items_field))
            self._items[items_field] = tuple(dict.fromkeys(items))
        return self._items[items_field]


def _period(table) -> Period:
    return Period(table.effective_from, table.effective_to)


def _citation(text: str, where: str) -> Citation:
    citation = parse_citation(text)
    if citation is None:
        raise PolicyError(f"{where}: {text!r} is not a statute citation")
    return citation


def load_policy(path: Path) -> Policy:
    """Read one policy version from a TOML file, checked against `schema.PolicyFile`."""
    try:
        data = path.read_bytes()
        raw = tomllib.loads(data.decode("utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy {path} is not valid TOML: {exc}") from None
    try:
        given = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"policy {path}: {first_error(exc)}") from None
    meta, limits, ident, items = given.policy, given.thresholds, given.identification, given.items
    policy = Policy(
        name=meta.name,
        version=meta.version,
        period=_period(meta),
        thresholds=Thresholds(**limits.model_dump()),
        identification=IdentificationRules(
            ident.threshold,
            ident.review,
            ident.margin,
            _nicknames(path, ident.nicknames, ident.standard_nicknames),
        ),
        disclosable_items=frozenset(items.disclosable),
        return_information_items=frozenset(items.return_information),
        item_aliases=dict(items.aliases),
        address_placeholders=frozenset(fold(p) for p in given.placeholders.phrases),
        name_placeholders=frozenset(fold(p) for p in given.placeholders.name_phrases),
        agencies={
            a.code: Agency(
                a.code,
                a.name or a.code,
                a.safeguards_deficient,
                tuple(AuthorizedOfficial(s.name, s.title, _period(s)) for s in a.signers),
            )
            for a in given.agencies
        },
        agreements=tuple(
            Agreement(
                a.agency,
                a.name,
                _period(a),
                tuple(
                    _citation(c, f"policy {path}: agreement with {a.agency}")
                    for c in a.removal_order_required_for
                ),
            )
            for a in given.agreements
        ),
        statutes=tuple(
            Statute(_citation(s.citation, f"policy {path}: statute catalog"), s.kind, s.title)
            for s in given.statutes
        ),
        remediation=Remediation(**given.remediation.model_dump()),
        history_window_days=given.history.window_days,
        source=path,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return policy


def _nicknames(
    path: Path, listed: dict[str, str], standard: str | None
) -> frozenset[tuple[str, str]]:
    """The policy's (nickname, name) pairs: those it lists, and the published table it names, at
    exactly the release it names (docs/DESIGN.md rule 2: "nicknames only where the policy lists them")."""
    pairs = {(fold(k), fold(v)) for k, v in listed.items()}
    if standard:
        package, wanted = standard.split("==")
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != wanted:
            raise PolicyError(
                f"policy {path} names the nickname table {standard}, but {package} {installed} is installed"
            )
        pairs |= _standard_nicknames()
    return frozenset((a, b) for a, b in pairs if a and b and a != b)


@lru_cache(maxsize=1)
def _standard_nicknames() -> frozenset[tuple[str, str]]:
    # entries such as "k.c." are initials, not a nickname one token can stand for
    return frozenset(
        (fold(n), fold(name))
        for name, nicks in NickNamer().nickname_lookup.items()
        for n in nicks
        if n.isalpha() and name.isalpha()
    )


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
    versions = [load_policy(f) for f in files]
    seen: dict[str, Policy] = {}
    for version in versions:
        other = seen.setdefault(version.version, version)
        if other is not version and other.sha256 != version.sha256:
            raise PolicyError(
                f"policy files {other.source} and {version.source} both call themselves "
                f"{version.version!r} but differ: give each version its own name"
            )
    return versions


def known_agencies(policies: list[Policy]) -> frozenset[str]:
    """Every requesting agency any policy version names: what an order may be scoped to."""
    return frozenset(code for policy in policies for code in policy.agencies)
