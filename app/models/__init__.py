"""SQLAlchemy models, one module per aggregate. Importing this loads them all."""

from app.models.accounts import Account, Policy, User, UserPolicy
from app.models.apps import AlarmContact, AllowedCountry, Application, FrequencyAllowlistEntry
from app.models.audit import AuditEntry

__all__ = [
    "Account",
    "AlarmContact",
    "AllowedCountry",
    "Application",
    "AuditEntry",
    "FrequencyAllowlistEntry",
    "Policy",
    "User",
    "UserPolicy",
]
