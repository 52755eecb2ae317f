"""Scenario 1 of the plan: newsletter generation at scale (scheduling newsletters)."""

from locust import task

from perflab.scenarios.common import PlanUser, StagesShape  # noqa: F401 (the shape)


class NewsletterUser(PlanUser):
    @task
    def schedule_newsletter(self):
        self.client.post(
            "/api/v1/publications/newsletter/schedule",
            headers=self.headers,
            json={
                "content_ids": ["uuid1", "uuid2", "uuid3"],
                "channels": ["channel-uuid"],
                "scheduled_time": "2025-10-29T09:00:00Z",
            },
        )
