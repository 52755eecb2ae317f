"""Locustfile that loads perflab's recorder; ``perflab run`` passes it before the
scenario (``-f _record.py,scenario.py``). It defines no users."""

from locust import events

from perflab.recording import register

register(events)
