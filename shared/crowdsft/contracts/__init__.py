"""Event contracts shared by every service: pydantic v2 models and the topic map."""

from crowdsft.contracts.envelope import Event, derive_event_id, new_event_id, utc_now
from crowdsft.contracts.feedback import (
    EventDeadLettered,
    FeedbackAccepted,
    FeedbackDeadLettered,
    FeedbackRejected,
    FeedbackSubmitted,
    OriginalCopy,
    RejectionReason,
)
from crowdsft.contracts.rewards import PointsAwarded, ShapleyComputed, ShapleyValue
from crowdsft.contracts.rounds import (
    CandidateEvaluated,
    CandidateTrained,
    RoundDecided,
    RoundOpened,
    StartRound,
    TrainingRequested,
)
from crowdsft.contracts.topics import TOPIC_EVENTS

__all__ = [
    "TOPIC_EVENTS",
    "CandidateEvaluated",
    "CandidateTrained",
    "Event",
    "EventDeadLettered",
    "FeedbackAccepted",
    "FeedbackDeadLettered",
    "FeedbackRejected",
    "FeedbackSubmitted",
    "OriginalCopy",
    "PointsAwarded",
    "RejectionReason",
    "RoundDecided",
    "RoundOpened",
    "ShapleyComputed",
    "ShapleyValue",
    "StartRound",
    "TrainingRequested",
    "derive_event_id",
    "new_event_id",
    "utc_now",
]
