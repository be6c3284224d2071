"""The policy file's schema (pydantic): every key, its type and its bounds, so a file that would
misbehave is refused at load with one line naming the field (`thresholds.max_field_chars: ...`),
never at the first batch with a traceback. Unknown keys are refused too: a misspelt threshold
would otherwise be silently ignored and the default answer change."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Phrase = Annotated[str, StringConstraints(max_length=200)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Dated(_Table):
    effective_from: date
    effective_to: date | None = None

    @model_validator(mode="after")
    def _ordered(self):
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self


class PolicyMeta(_Dated):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    # Recorded on every batch beside the content's SHA-256 (String(64) in the store).
    version: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True,
            min_length=1,
            max_length=40,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        ),
    ]
    description: str = ""


class ThresholdsTable(_Table):
    tax_year_min: int = Field(ge=1913, le=2200)  # the income tax began in 1913
    relevance_min_chars: int = Field(ge=0, le=10_000)
    relevance_max_repeats: int = Field(ge=1, le=10_000_000)
    official_max_cases: int = Field(ge=1, le=10_000_000)
    max_field_chars: int = Field(ge=64, le=1 << 20)  # below 64 no address fits; above, damage


class IdentificationTable(_Table):
    threshold: float = Field(ge=-1000, le=1000, allow_inf_nan=False)
    review: float = Field(ge=-1000, le=1000, allow_inf_nan=False)
    margin: float = Field(gt=0, le=1000, allow_inf_nan=False)
    nicknames: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
    ] = {}
    # A published nickname table, pinned to its release ("nicknames==1.0.1"): the policy names the
    # exact table, so a package upgrade cannot change who agrees with whom under this version.
    standard_nicknames: (
        Annotated[str, StringConstraints(pattern=r"^nicknames==\d+(\.\d+)*$")] | None
    ) = None

    @model_validator(mode="after")
    def _ordered(self):
        if self.review > self.threshold:
            raise ValueError("review must not be above threshold")
        return self


class RemediationTable(_Table):
    taxpayer_notice_days: int = Field(default=30, ge=1, le=3650)
    disposal_request_days: int = Field(default=5, ge=1, le=3650)


class HistoryTable(_Table):
    # Cases per officer and uses of one reason count the agency's batches within this many days
    # before a batch's as-of date; duplicates count every earlier batch.
    window_days: int = Field(default=365, ge=1, le=36_500)


class ItemsTable(_Table):
    disclosable: list[Phrase] = Field(min_length=1)
    return_information: list[Phrase] = []
    aliases: dict[Phrase, Phrase] = {}


class PlaceholdersTable(_Table):
    phrases: list[Phrase] = []
    name_phrases: list[Phrase] = []


class SignerTable(_Dated):
    name: Text
    title: Text


class AgencyTable(_Table):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    name: str = ""
    safeguards_deficient: bool = False
    signers: list[SignerTable] = []


class AgreementTable(_Dated):
    agency: Text
    name: str = ""
    removal_order_required_for: list[Text] = []


class StatuteTable(_Table):
    citation: Text
    kind: Literal["criminal", "civil", "tax_administration"]
    title: str = ""


class PolicyFile(_Table):
    policy: PolicyMeta
    thresholds: ThresholdsTable
    identification: IdentificationTable
    items: ItemsTable
    remediation: RemediationTable = RemediationTable()
    history: HistoryTable = HistoryTable()
    placeholders: PlaceholdersTable = PlaceholdersTable()
    agencies: list[AgencyTable] = []
    agreements: list[AgreementTable] = []
    statutes: list[StatuteTable] = []


def first_error(exc: ValidationError) -> str:
    """One line: the field's path and what is wrong with it (and how many more errors there are)."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "(the file)"
    given = first.get("input")
    shown = (
        f" (given {given!r})"
        if isinstance(given, (str, int, float, bool)) and len(repr(given)) < 60
        else ""
    )
    more = f"; and {len(errors) - 1} more" if len(errors) > 1 else ""
    return f"{where}: {first['msg'].removeprefix('Value error, ')}{shown}{more}"
