"""Scenario 3 of the plan: concurrent publication management, tasks weighted 3:2:1."""

from locust import task

from perflab.scenarios.common import PlanUser, StagesShape  # noqa: F401 (the shape)


class PublicationUser(PlanUser):
    def on_start(self):
        super().on_start()
        response = self.client.post(
            "/api/v1/publications",
            headers=self.headers,
            json={
                "content_ids": ["uuid1"],
                "channels": ["channel-uuid"],
                "publication_type": "newsletter",
            },
        )
        self.publication_id = (
            response.json()["id"] if response.status_code == 201 else 1
        )

    @task(3)
    def create_publication(self):
        self.client.post(
            "/api/v1/publications",
            headers=self.headers,
            json={
                "content_ids": ["uuid1", "uuid2"],
                "channels": ["channel-uuid"],
                "publication_type": "newsletter",
            },
        )

    @task(2)
    def list_publications(self):
        self.client.get(
            "/api/v1/publications?limit=20",
            headers=self.headers,
            name="/api/v1/publications?limit=20",
        )

    @task(1)
    def get_publication(self):
        self.client.get(
            f"/api/v1/publications/{self.publication_id}",
            headers=self.headers,
            name="/api/v1/publications/{id}",
        )
