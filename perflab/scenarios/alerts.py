"""Scenario 2 of the plan: real-time alert distribution (each alert answers 201)."""

from locust import task

from perflab.scenarios.common import PlanUser, StagesShape  # noqa: F401 (the shape)


class AlertUser(PlanUser):
    @task
    def send_alert(self):
        with self.client.post(
            "/api/v1/alerts",
            headers=self.headers,
            json={
                "content_id": "alert-uuid",
                "priority": "high",
                "channels": ["channel-uuid"],
            },
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"expected 201, got {response.status_code}")
