"""SQLAlchemy models, one module per aggregate. Importing this loads them all."""

from app.models.accounts import Account, Policy, User, UserPolicy
from app.models.alarms import Alarm, AlarmDelivery, CaptchaRule, MonitorCheckpoint
from app.models.api import ApiKey, IdempotentReply, SendReply
from app.models.apps import AlarmContact, AllowedCountry, Application, FrequencyAllowlistEntry
from app.models.audience import CustomerGroup, GroupMember
from app.models.audit import AuditEntry
from app.models.chat import ReviewMessage
from app.models.content import Qualification, Signature, Template
from app.models.notifications import Notification
from app.models.sending import (
    CallbackAttempt,
    CreditPackage,
    Message,
    MuteEntry,
    ReceiptInbox,
    Reply,
    SubmitAttempt,
    Unsubscribe,
    UnsubscribeRemoval,
)
from app.models.stats import (
    StatAppsDaily,
    StatCodesDaily,
    StatCountriesDaily,
    StatRollup,
    StatRollupDaily,
    StatTotalsDaily,
    StatTotalsHourly,
)
from app.models.tasks import SendTask, SendTaskError, SendTaskFigure, SendTaskRecipient

__all__ = [
    "Account",
    "Alarm",
    "AlarmContact",
    "AlarmDelivery",
    "AllowedCountry",
    "ApiKey",
    "Application",
    "AuditEntry",
    "CallbackAttempt",
    "CaptchaRule",
    "CreditPackage",
    "CustomerGroup",
    "FrequencyAllowlistEntry",
    "GroupMember",
    "IdempotentReply",
    "Message",
    "MonitorCheckpoint",
    "MuteEntry",
    "Notification",
    "Policy",
    "Qualification",
    "ReceiptInbox",
    "Reply",
    "ReviewMessage",
    "SendReply",
    "SendTask",
    "SendTaskError",
    "SendTaskFigure",
    "SendTaskRecipient",
    "Signature",
    "StatAppsDaily",
    "StatCodesDaily",
    "StatCountriesDaily",
    "StatRollup",
    "StatRollupDaily",
    "StatTotalsDaily",
    "StatTotalsHourly",
    "SubmitAttempt",
    "Template",
    "Unsubscribe",
    "UnsubscribeRemoval",
    "User",
    "UserPolicy",
]
