"""All four of the plan's scenarios at once: one user class per scenario."""

from perflab.scenarios.alerts import AlertUser  # noqa: F401
from perflab.scenarios.analytics import AnalyticsUser  # noqa: F401
from perflab.scenarios.common import StagesShape  # noqa: F401 (the shape)
from perflab.scenarios.newsletter import NewsletterUser  # noqa: F401
from perflab.scenarios.publications import PublicationUser  # noqa: F401
