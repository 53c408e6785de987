"""The app's admin pages, one module each, registered when this package is imported.

``jobs`` (AI jobs and their actions), ``usage`` (the call log, totals, chart, export),
``limits`` (quotas and tenant policies), ``credentials`` (tenants' provider keys),
``review`` (Review AI proposals). Their parts: ``mixins`` (``AIFieldsAdminMixin`` for
your own ModelAdmins), ``tenant_access`` (scoping to ``TENANT_FOR_USER``), ``forms``,
``resources`` (import-export), ``charts`` (server-rendered SVG), ``stuck`` (the job
list's filter of jobs waiting past STUCK_AFTER), ``job_changelist`` (the job list's
capped count and small-table filters) and ``usage_changelist`` (the usage list's
roll-up paginator and filters).
"""

from .credentials import ProviderCredentialAdmin
from .jobs import AIJobAdmin
from .limits import QuotaAdmin, TenantPolicyAdmin
from .mixins import AIFieldsAdminMixin
from .review import AIProposalAdmin
from .usage import AIUsageAdmin

__all__ = [
    "AIFieldsAdminMixin",
    "AIJobAdmin",
    "AIProposalAdmin",
    "AIUsageAdmin",
    "ProviderCredentialAdmin",
    "QuotaAdmin",
    "TenantPolicyAdmin",
]
