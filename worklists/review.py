"""Two-level sign-off (报告 + 审核): which reports need a second reader, and who may be it.

A Chinese imaging department issues a report under two names: the reporting physician (报告医师)
who writes and signs it, and the reviewing physician (审核医师), usually more senior, who checks
and co-signs it. Whether a report needs that second look is a rule of the department, set in the
worklist TOML's ``[review]`` table (docs/worklists.md): by the writer's professional grade
(residents always), by queue, by priority. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .priorities import Priority


class Grade(StrEnum):
    """A reader's professional grade (职称), lowest first."""

    RESIDENT = "resident"
    """住院医师: reports under supervision."""
    ATTENDING = "attending"
    """主治医师: the grade readers have unless told otherwise."""
    ASSOCIATE_CHIEF = "associate_chief"
    """副主任医师."""
    CHIEF = "chief"
    """主任医师."""

    @property
    def rank(self) -> int:
        return list(Grade).index(self)


DEFAULT_GRADE = Grade.ATTENDING
"""What every account has until an administrator says otherwise: an attending reports alone
under the shipped rules, so existing readers keep working as before."""


class ReviewRefusal(StrEnum):
    """Why a user may not review a report."""

    OWN_REPORT = "own_report"
    """Nobody reviews what they wrote: the second look must be someone else's."""
    GRADE_TOO_LOW = "grade_too_low"
    """The reviewer's grade is below the rules' ``reviewer_min_grade``."""


@dataclass(frozen=True)
class ReviewPolicy:
    """The department's review rule. A report needs review when any condition matches.

    The defaults review residents' reports only, by attendings or above, and allow stat and
    urgent reports to be released as preliminary before review."""

    grades: frozenset[Grade] = frozenset({Grade.RESIDENT})
    queues: frozenset[str] = frozenset()
    priorities: frozenset[Priority] = frozenset()
    reviewer_min_grade: Grade = Grade.ATTENDING
    preliminary_priorities: frozenset[Priority] = field(
        default_factory=lambda: frozenset({Priority.STAT, Priority.URGENT})
    )

    def needs_review(self, writer_grade: str, queue: str, priority: str) -> bool:
        """Whether a report written by a ``writer_grade`` reader, for a consultation on ``queue``
        with ``priority``, goes to a reviewer before it is issued."""
        return (
            grade_of(writer_grade) in self.grades
            or queue.strip().lower() in self.queues
            or priority in {p.value for p in self.priorities}
        )

    def refusal(
        self, reviewer_id: int, reviewer_grade: str, writer_id: int
    ) -> ReviewRefusal | None:
        """None when the user may review a report ``writer_id`` wrote; else the reason."""
        if reviewer_id == writer_id:
            return ReviewRefusal.OWN_REPORT
        if grade_of(reviewer_grade).rank < self.reviewer_min_grade.rank:
            return ReviewRefusal.GRADE_TOO_LOW
        return None

    def may_release_preliminary(self, priority: str) -> bool:
        """Stat and urgent reports (by default) may reach the clinic before review."""
        return priority in {p.value for p in self.preliminary_priorities}


def grade_of(value: str | None) -> Grade:
    """A stored grade; an unknown or missing one counts as the default (attending)."""
    try:
        return Grade(value or DEFAULT_GRADE)
    except ValueError:
        return DEFAULT_GRADE
