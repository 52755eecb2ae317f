"""Scenario 4 of the plan: analytics query load."""

from locust import task

from perflab.scenarios.common import PlanUser, StagesShape  # noqa: F401 (the shape)


class AnalyticsUser(PlanUser):
    @task
    def get_engagement_analytics(self):
        self.client.get(
            "/api/v1/analytics/engagement?"
            "start_date=2025-10-01&end_date=2025-10-31&channel_type=email",
            headers=self.headers,
            name="/api/v1/analytics/engagement",
        )

    @task
    def get_performance_analytics(self):
        self.client.get(
            "/api/v1/analytics/performance?start_date=2025-10-01&end_date=2025-10-31",
            headers=self.headers,
            name="/api/v1/analytics/performance",
        )
