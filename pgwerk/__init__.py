"""pgwerk: a job queue for blocking Python whose only broker is PostgreSQL."""

from pgwerk.app import Werk
from pgwerk.config import WerkConfig
from pgwerk.exceptions import (
    ConfigurationError,
    DatabaseUnavailable,
    DependencyFailed,
    JobAborted,
    JobError,
    JobNotFound,
    JobTimeout,
    SchemaError,
    WerkError,
    WorkerFailed,
    WorkerShutdown,
)
from pgwerk.job import (
    Callback,
    Context,
    Dependency,
    EnqueueParams,
    Execution,
    Job,
    JobStatus,
    QueueLimit,
    Repeat,
    Retry,
    Snooze,
    Unique,
    WorkerInfo,
)
from pgwerk.serializers import JSONSerializer, PickleSerializer, Serializer
from pgwerk.worker import DequeueStrategy, Worker

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "ConfigurationError",
    "Context",
    "DatabaseUnavailable",
    "Dependency",
    "DependencyFailed",
    "DequeueStrategy",
    "EnqueueParams",
    "Execution",
    "JSONSerializer",
    "Job",
    "JobAborted",
    "JobError",
    "JobNotFound",
    "JobStatus",
    "JobTimeout",
    "PickleSerializer",
    "QueueLimit",
    "Repeat",
    "Retry",
    "SchemaError",
    "Serializer",
    "Snooze",
    "Unique",
    "Werk",
    "WerkConfig",
    "WerkError",
    "Worker",
    "WorkerInfo",
    "WorkerFailed",
    "WorkerShutdown",
]
