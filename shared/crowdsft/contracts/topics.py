"""Topic names and which event each topic carries: the system's event map in one place."""

from __future__ import annotations

from pydantic import BaseModel

from crowdsft.contracts.feedback import (
    EventDeadLettered,
    FeedbackAccepted,
    FeedbackDeadLettered,
    FeedbackRejected,
    FeedbackSubmitted,
)
from crowdsft.contracts.rewards import PointsAwarded, ShapleyComputed
from crowdsft.contracts.rounds import (
    CandidateEvaluated,
    CandidateTrained,
    RoundDecided,
    RoundOpened,
    StartRound,
    TrainingRequested,
)

FEEDBACK_SUBMITTED = "crowdsft.feedback.submitted"
FEEDBACK_ACCEPTED = "crowdsft.feedback.accepted"
FEEDBACK_REJECTED = "crowdsft.feedback.rejected"
FEEDBACK_DLQ = "crowdsft.feedback.dlq"
DEAD_LETTERS = "crowdsft.dlq"
ROUND_START = "crowdsft.round.start"
ROUND_OPENED = "crowdsft.round.opened"
TRAINING_REQUESTED = "crowdsft.training.requested"
CANDIDATE_TRAINED = "crowdsft.candidate.trained"
CANDIDATE_EVALUATED = "crowdsft.candidate.evaluated"
ROUND_DECIDED = "crowdsft.round.decided"
POINTS_AWARDED = "crowdsft.points.awarded"
SHAPLEY_COMPUTED = "crowdsft.shapley.computed"

TOPIC_EVENTS: dict[str, type[BaseModel]] = {
    FEEDBACK_SUBMITTED: FeedbackSubmitted,
    FEEDBACK_ACCEPTED: FeedbackAccepted,
    FEEDBACK_REJECTED: FeedbackRejected,
    FEEDBACK_DLQ: FeedbackDeadLettered,
    DEAD_LETTERS: EventDeadLettered,
    ROUND_START: StartRound,
    ROUND_OPENED: RoundOpened,
    TRAINING_REQUESTED: TrainingRequested,
    CANDIDATE_TRAINED: CandidateTrained,
    CANDIDATE_EVALUATED: CandidateEvaluated,
    ROUND_DECIDED: RoundDecided,
    POINTS_AWARDED: PointsAwarded,
    SHAPLEY_COMPUTED: ShapleyComputed,
}

_TOPIC_OF: dict[type[BaseModel], str] = {model: topic for topic, model in TOPIC_EVENTS.items()}


def topic_of(event: BaseModel) -> str:
    """The one topic an event type travels on: publishers never name topics by hand."""
    try:
        return _TOPIC_OF[type(event)]
    except KeyError:
        raise LookupError(f"{type(event).__name__} has no topic in TOPIC_EVENTS") from None
